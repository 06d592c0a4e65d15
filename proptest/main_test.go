package proptest_test

import (
	"flag"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/convergedb/converge"
	"pgregory.net/rapid"
)

// TestMain lets CONVERGE_PROPTEST_CHECKS set the number of rapid checks
// (as -rapid.checks or RAPID_CHECKS do; an explicit -rapid.checks wins),
// and makes state machine runs longer than rapid's default (100 steps on
// average, not 30) unless -rapid.steps or RAPID_STEPS say otherwise: most
// of a run's cost is opening its Pebble stores, so longer runs are cheap.
func TestMain(m *testing.M) {
	flag.Parse()
	explicit := make(map[string]bool)
	flag.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	if v := os.Getenv("CONVERGE_PROPTEST_CHECKS"); v != "" && !explicit["rapid.checks"] {
		if err := flag.Set("rapid.checks", v); err != nil {
			panic("CONVERGE_PROPTEST_CHECKS: " + err.Error())
		}
	}
	if _, env := os.LookupEnv("RAPID_STEPS"); !env && !explicit["rapid.steps"] {
		if err := flag.Set("rapid.steps", "100"); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}

// ns is the namespace every test writes.
const ns = "team"

// Item is the collection the tests write: a register of each of two
// types, a set, a counter and a max register.
type Item struct {
	ID    string   `converge:"id"`
	Title string   `msgpack:"title"`
	Rank  int      `msgpack:"rank"`
	Tags  []string `msgpack:"tags" converge:"set"`
	Hits  int64    `msgpack:"hits" converge:"counter"`
	Peak  int      `msgpack:"peak" converge:"max"`
	Meta  converge.Meta
}

// Small value spaces, so that concurrent writes collide.
var (
	genTitle = rapid.SampledFrom([]string{"", "a", "b", "c"})
	genRank  = rapid.SampledFrom([]int{-1, 0, 1, 2, 1 << 40})
	genTag   = rapid.SampledFrom([]string{"x", "y", "ab"}) // "ab" sorts first by value, last by encoding
	genTags  = rapid.SliceOfNDistinct(genTag, 0, 3, rapid.ID[string])
	genHits  = rapid.Int64Range(-3, 3)
	genPeak  = rapid.IntRange(-5, 5)
)

func drawItem(t *rapid.T, id string) *Item {
	return &Item{
		ID:    id,
		Title: genTitle.Draw(t, "title"),
		Rank:  genRank.Draw(t, "rank"),
		Tags:  genTags.Draw(t, "tags"),
		Hits:  genHits.Draw(t, "hits"),
		Peak:  genPeak.Draw(t, "peak"),
	}
}

// newRand returns a PRNG seeded from a draw, so shrinking and replay see
// the same random choices.
func newRand(t *rapid.T) *rand.Rand {
	return rand.New(rand.NewPCG(rapid.Uint64().Draw(t, "seed"), 0x5eed))
}
