package oplog

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/convergedb/converge/crdt"
)

// # Integrity check at open
//
// Open checks, per namespace and origin, that the log holds exactly the ops
// in (horizon, vector]: its first entry is the horizon's successor and its
// last is the vector's entry. It costs a few seeks per (namespace, origin),
// not a read of every record. A store whose files lost part of their data
// (a damaged MANIFEST that made Pebble fall back to an older version, a
// damaged WAL) fails it, and Open returns an error wrapping ErrCorrupt that
// says what is missing and where, rather than opening a store short of
// acknowledged writes. [Log.Verify] remains the full check of the states.

// recoveryHint points at the operator's recovery steps.
const recoveryHint = `see "Recovering a damaged store" in docs/OPERATIONS.md`

// seqRange is the first and last seq of one origin's log in a namespace.
type seqRange struct{ first, last uint64 }

// storeSeqs is what the check reads of the store: per namespace, the
// vector, the horizon and the log's extent per origin.
type storeSeqs struct {
	vectors  map[string]crdt.VersionVector
	horizons map[string]crdt.VersionVector
	logs     map[string]map[crdt.ReplicaID]seqRange
}

// readStoreSeqs reads every namespace's vector and horizon and the extent
// of every origin's log, seeking past each origin's entries.
func (l *Log) readStoreSeqs() (*storeSeqs, error) {
	s := &storeSeqs{logs: make(map[string]map[crdt.ReplicaID]seqRange)}
	var err error
	if s.vectors, err = l.readAllSeqs(tagVector); err != nil {
		return nil, fmt.Errorf("read vectors: %w", err)
	}
	if s.horizons, err = l.readAllSeqs(tagHorizon); err != nil {
		return nil, fmt.Errorf("read horizons: %w", err)
	}
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagLog}, UpperBound: []byte{tagLog + 1}})
	if err != nil {
		return nil, pebbleErr(err)
	}
	defer it.Close()
	for ok := it.First(); ok; {
		ns, origin, seq, err := splitLogKey(it.Key())
		if err != nil {
			return nil, err
		}
		end := prefixEnd(append(nsKey(tagLog, ns), origin[:]...))
		if !it.SeekLT(end) {
			return nil, fmt.Errorf("%w: log of %q/%v vanished while read", ErrCorrupt, ns, origin)
		}
		_, _, last, err := splitLogKey(it.Key())
		if err != nil {
			return nil, err
		}
		if s.logs[ns] == nil {
			s.logs[ns] = make(map[crdt.ReplicaID]seqRange)
		}
		s.logs[ns][origin] = seqRange{seq, last}
		ok = it.SeekGE(end)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("read log extents: %w", pebbleErr(err))
	}
	return s, nil
}

// readAllSeqs reads a whole keyspace of ns origin → seq entries.
func (l *Log) readAllSeqs(tag byte) (map[string]crdt.VersionVector, error) {
	out := make(map[string]crdt.VersionVector)
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tag}, UpperBound: []byte{tag + 1}})
	if err != nil {
		return nil, pebbleErr(err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		k, v := it.Key(), it.Value()
		ns, rest, err := readString(k[1:])
		if err != nil || len(rest) != 16 || len(v) != 8 {
			return nil, fmt.Errorf("%w: entry %q", ErrCorrupt, k)
		}
		if out[ns] == nil {
			out[ns] = crdt.VersionVector{}
		}
		out[ns][crdt.ReplicaID(rest)] = binary.BigEndian.Uint64(v)
	}
	return out, pebbleErr(it.Error())
}

// splitLogKey decodes a log key.
func splitLogKey(k []byte) (ns string, origin crdt.ReplicaID, seq uint64, err error) {
	ns, rest, err := readString(k[1:])
	if err != nil || len(rest) != 24 {
		return "", origin, 0, fmt.Errorf("%w: log key %q", ErrCorrupt, k)
	}
	copy(origin[:], rest)
	return ns, origin, binary.BigEndian.Uint64(rest[16:]), nil
}

// check returns, for each (namespace, origin) whose log does not hold
// exactly (horizon, vector], a sentence saying what is wrong, sorted.
func (s *storeSeqs) check() []string {
	var problems []string
	for _, ns := range s.namespaces() {
		vv, h, logs := s.vectors[ns], s.horizons[ns], s.logs[ns]
		origins := make(map[crdt.ReplicaID]bool)
		for o := range vv {
			origins[o] = true
		}
		for o := range h {
			origins[o] = true
		}
		for o := range logs {
			origins[o] = true
		}
		for o := range origins {
			if p := checkOrigin(vv[o], h[o], logs[o], logs != nil && hasRange(logs, o)); p != "" {
				problems = append(problems, fmt.Sprintf("namespace %q, origin %v: %s", ns, o, p))
			}
		}
	}
	slices.Sort(problems)
	return problems
}

func hasRange(m map[crdt.ReplicaID]seqRange, o crdt.ReplicaID) bool {
	_, ok := m[o]
	return ok
}

// checkOrigin says what is wrong with one origin's log given its vector
// entry v and horizon h, or "" if nothing.
func checkOrigin(v, h uint64, lg seqRange, hasLog bool) string {
	switch {
	case h > v:
		return fmt.Sprintf("the compaction horizon %d is beyond the vector's %d (the vector entry was lost)", h, v)
	case !hasLog && v > h:
		return fmt.Sprintf("the log is empty but the vector says it holds ops %d to %d: %d acknowledged ops are missing", h+1, v, v-h)
	case !hasLog:
		return ""
	case lg.first <= h:
		return fmt.Sprintf("the log starts at %d, at or below the compaction horizon %d", lg.first, h)
	case lg.first > h+1:
		return fmt.Sprintf("the log starts at %d but the compaction horizon is %d: ops %d to %d are missing", lg.first, h, h+1, lg.first-1)
	case lg.last < v:
		return fmt.Sprintf("the log ends at %d but the vector says %d: %d acknowledged ops are missing", lg.last, v, v-lg.last)
	case lg.last > v:
		return fmt.Sprintf("the log holds ops up to %d beyond the vector's %d (the vector entry was lost)", lg.last, v)
	}
	return ""
}

// namespaces returns every namespace the check read anything of, sorted.
func (s *storeSeqs) namespaces() []string {
	set := make(map[string]bool)
	for ns := range s.vectors {
		set[ns] = true
	}
	for ns := range s.horizons {
		set[ns] = true
	}
	for ns := range s.logs {
		set[ns] = true
	}
	out := make([]string, 0, len(set))
	for ns := range set {
		out = append(out, ns)
	}
	slices.Sort(out)
	return out
}

// checkIntegrity runs the open-time check and returns what it read, or an
// error wrapping ErrCorrupt that lists the problems (at most 10).
func (l *Log) checkIntegrity() (*storeSeqs, error) {
	s, err := l.readStoreSeqs()
	if err != nil {
		return nil, fmt.Errorf("integrity check: %w", err)
	}
	problems := s.check()
	if len(problems) == 0 {
		return s, nil
	}
	more := ""
	if len(problems) > 10 {
		more = fmt.Sprintf(" (and %d more)", len(problems)-10)
		problems = problems[:10]
	}
	return nil, fmt.Errorf("%w: integrity check at open: %s%s; the store's files lost data (a damaged MANIFEST or WAL, or files restored from different times): %s",
		ErrCorrupt, strings.Join(problems, "; "), more, recoveryHint)
}
