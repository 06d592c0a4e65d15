# Mirrors .ci/run; .ci/run is the source of truth.
.PHONY: all test race lint bench peers fuzz demo ci
all: lint test
test:
	go test ./...
race:
	go test -race -count=1 ./oplog/ ./transport/... .
lint:
	gofmt -l $$(git ls-files '*.go')
	go vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
bench:
	go test -run='^$$' -bench=. -benchmem ./...
peers:
	cd bench/peers && go vet ./... && go test -count=1 ./... && go run . -quick
fuzz:
	go test -run='^$$' -fuzz=FuzzDecodeOp -fuzztime=60s ./crdt/
	go test -run='^$$' -fuzz=FuzzDecodeRecord -fuzztime=60s ./crdt/
	go test -run='^$$' -fuzz=FuzzDecodeText -fuzztime=60s ./crdt/seq/
	go test -run='^$$' -fuzz=FuzzDecodeList -fuzztime=60s ./crdt/seq/
	go test -run='^$$' -fuzz=FuzzReader -fuzztime=60s ./internal/mp/
	go test -run='^$$' -fuzz=FuzzDecodeRequest -fuzztime=60s ./transport/
	go test -run='^$$' -fuzz=FuzzDecodeResponse -fuzztime=60s ./transport/
	go test -run='^$$' -fuzz=FuzzDecodeConflict -fuzztime=60s ./materialize/
	go test -run='^$$' -fuzz=FuzzParse -fuzztime=60s ./hlc/
demo:
	go run ./cmd/converge demo
ci:
	bash .ci/run
