package proptest_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/proptest"
	"pgregory.net/rapid"
)

// The reference model of read-edit-save: a plain list of saves, each
// holding only what its user changed relative to the version the user read.
// A replica shows the saves its version vector covers, folded by the rules
// of the design, with no CRDT state: a register holds the value of the
// latest save (by HLC, then replica) that changed it, a max register the
// greatest value offered, a counter the sum of the deltas, and a set the
// elements added by a save whose add no save removed, where a save's remove
// of an element cancels the adds of it the user's read showed.

// addID names one add of a set element: the save that made it.
type addID struct {
	dot  crdt.Dot
	elem string
}

// save is what one save wrote: the changed fields only.
type save struct {
	key        string
	dot        crdt.Dot
	stamp      crdt.Stamp
	title      *string
	rank, peak *int
	hits       int64
	adds       []string
	removes    []addID // the adds the user's read showed, of the elements it removed
}

// view is a record as the model computes it from some saves.
type view struct {
	title      string
	rank, peak int
	hits       int64
	tags       map[string][]addID // the live adds of each element
}

type resModel struct{ saves []save }

// view computes record key from the saves vv covers.
func (m *resModel) view(key string, vv crdt.VersionVector) view {
	v := view{tags: map[string][]addID{}}
	var titleAt, rankAt crdt.Stamp
	removed := map[addID]bool{}
	var adds []addID
	first := true
	for _, s := range m.saves {
		if s.key != key || !vv.Contains(s.dot) {
			continue
		}
		if s.title != nil && s.stamp.Compare(titleAt) > 0 {
			v.title, titleAt = *s.title, s.stamp
		}
		if s.rank != nil && s.stamp.Compare(rankAt) > 0 {
			v.rank, rankAt = *s.rank, s.stamp
		}
		if s.peak != nil && (first || *s.peak > v.peak) {
			v.peak, first = *s.peak, false
		}
		v.hits += s.hits
		for _, e := range s.adds {
			adds = append(adds, addID{s.dot, e})
		}
		for _, r := range s.removes {
			removed[r] = true
		}
	}
	for _, a := range adds {
		if !removed[a] {
			v.tags[a.elem] = append(v.tags[a.elem], a)
		}
	}
	return v
}

// differs describes how item differs from v, or returns "".
func (v view) differs(item Item) string {
	var d []string
	if item.Title != v.title {
		d = append(d, fmt.Sprintf("title %q, model %q", item.Title, v.title))
	}
	if item.Rank != v.rank {
		d = append(d, fmt.Sprintf("rank %d, model %d", item.Rank, v.rank))
	}
	if item.Peak != v.peak {
		d = append(d, fmt.Sprintf("peak %d, model %d", item.Peak, v.peak))
	}
	if item.Hits != v.hits {
		d = append(d, fmt.Sprintf("hits %d, model %d", item.Hits, v.hits))
	}
	if got, want := slices.Sorted(slices.Values(item.Tags)), slices.Sorted(maps.Keys(v.tags)); !slices.Equal(got, want) {
		d = append(d, fmt.Sprintf("tags %q, model %q", got, want))
	}
	return strings.Join(d, "; ")
}

// held is a struct an app holds: read (or refreshed by a Put) on a replica,
// maybe edited since, not saved yet.
type held struct {
	replica int
	item    Item
	read    view               // what the model says the struct was read as
	at      crdt.VersionVector // the replica's vector then
}

// resMachine is the state of one TestReadEditSave run.
type resMachine struct {
	ctx   context.Context
	net   *proptest.Network
	colls []*converge.Collection[Item]
	keys  []string
	model resModel
	held  []*held
	now   int64
	skew  []int64
	stats *resStats
}

type resStats struct {
	runs, saves, emptySaves, modifies, aborted, staleSaves, conflicts int
}

func (s *resStats) String() string {
	return fmt.Sprintf("%d runs: %d saves (%d wrote nothing, %d saved a struct after other writes reached its replica), %d modifies, %d aborted saves, %d conflicts detected",
		s.runs, s.saves, s.emptySaves, s.staleSaves, s.modifies, s.aborted, s.conflicts)
}

func (m *resMachine) vector(t *rapid.T, i int) crdt.VersionVector {
	vv, err := m.net.Replica(i).Admin().Log().Vector(m.ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	return vv
}

func (m *resMachine) replica(t *rapid.T) int {
	return rapid.IntRange(0, m.net.N()-1).Draw(t, "replica")
}

func (m *resMachine) setClocks() {
	for i, s := range m.skew {
		m.net.Clock(i).Set(m.now + s)
	}
}

// read: an app reads a record and holds it.
func (m *resMachine) read(t *rapid.T) {
	i, key := m.replica(t), rapid.SampledFrom(m.keys).Draw(t, "key")
	item, err := m.colls[i].Get(m.ctx, ns, key)
	if err != nil {
		t.Fatalf("get %s on %d: %v", key, i, err)
	}
	vv := m.vector(t, i)
	h := &held{replica: i, item: item, read: m.model.view(key, vv), at: vv}
	if len(m.held) < 6 {
		m.held = append(m.held, h)
	} else {
		m.held[rapid.IntRange(0, len(m.held)-1).Draw(t, "forget")] = h
	}
}

// edit changes a random subset of the struct's fields, as a user would.
func edit(t *rapid.T, item *Item) {
	if rapid.Bool().Draw(t, "edit title") {
		item.Title = genTitle.Draw(t, "title")
	}
	if rapid.Bool().Draw(t, "edit rank") {
		item.Rank = genRank.Draw(t, "rank")
	}
	if rapid.Bool().Draw(t, "edit peak") {
		item.Peak = genPeak.Draw(t, "peak")
	}
	if rapid.Bool().Draw(t, "edit hits") {
		item.Hits += genHits.Draw(t, "delta")
	}
	if len(item.Tags) > 0 && rapid.Bool().Draw(t, "remove a tag") {
		item.Tags = slices.Delete(slices.Clone(item.Tags), 0, 1)
		slices.Reverse(item.Tags) // order does not matter
	}
	if rapid.Bool().Draw(t, "add a tag") {
		if tag := genTag.Draw(t, "tag"); !slices.Contains(item.Tags, tag) {
			item.Tags = append(slices.Clone(item.Tags), tag)
		}
	}
}

// changes returns the save of what item changed relative to read: the
// fields whose value differs, the tags added and removed (a remove cancels
// the adds read showed), the counter's delta.
func changes(key string, item Item, read view) save {
	s := save{key: key}
	if item.Title != read.title {
		s.title = &item.Title
	}
	if item.Rank != read.rank {
		s.rank = &item.Rank
	}
	if item.Peak != read.peak {
		s.peak = &item.Peak
	}
	s.hits = item.Hits - read.hits
	for _, tag := range item.Tags {
		if _, ok := read.tags[tag]; !ok && !slices.Contains(s.adds, tag) {
			s.adds = append(s.adds, tag)
		}
	}
	for tag, ids := range read.tags {
		if !slices.Contains(item.Tags, tag) {
			s.removes = append(s.removes, ids...)
		}
	}
	return s
}

func (s save) empty() bool {
	return s.title == nil && s.rank == nil && s.peak == nil && s.hits == 0 && len(s.adds) == 0 && len(s.removes) == 0
}

// written records in the model the save s that replica i just made: the
// one op it wrote (none if s changes nothing), found in i's log beyond
// before.
func (m *resMachine) written(t *rapid.T, i int, before crdt.VersionVector, s save) {
	var written []crdt.Op
	for e, err := range m.net.Replica(i).Admin().Log().Missing(m.ctx, ns, before) {
		if err != nil {
			t.Fatal(err)
		}
		written = append(written, e.Op)
	}
	switch {
	case s.empty() && len(written) == 0:
		m.stats.emptySaves++
		return
	case s.empty() || len(written) != 1:
		t.Fatalf("a save of %s on %d that changed %+v wrote %d ops: %+v", s.key, i, s, len(written), written)
	}
	s.dot, s.stamp = written[0].Dot, written[0].Stamp()
	m.model.saves = append(m.model.saves, s)
	m.stats.saves++
}

// save: the app edits a struct it holds and puts it. The struct then
// holds the record as written.
func (m *resMachine) save(t *rapid.T) {
	if len(m.held) == 0 {
		t.Skip("nothing held")
	}
	h := m.held[rapid.IntRange(0, len(m.held)-1).Draw(t, "held")]
	edit(t, &h.item)
	s := changes(h.item.ID, h.item, h.read)
	before := m.vector(t, h.replica)
	if !before.Equal(h.at) {
		m.stats.staleSaves++
	}
	if _, err := m.colls[h.replica].Put(m.ctx, ns, &h.item); err != nil {
		t.Fatalf("put %s on %d: %v", h.item.ID, h.replica, err)
	}
	m.written(t, h.replica, before, s)
	h.at = m.vector(t, h.replica)
	h.read = m.model.view(h.item.ID, h.at)
	if d := h.read.differs(h.item); d != "" {
		t.Fatalf("after put of %s on %d, the struct differs from the record written: %s", h.item.ID, h.replica, d)
	}
}

// modify: read, edit and write in one local transaction.
func (m *resMachine) modify(t *rapid.T) {
	i, key := m.replica(t), rapid.SampledFrom(m.keys).Draw(t, "key")
	read := m.model.view(key, m.vector(t, i))
	before := m.vector(t, i)
	var s save
	err := m.colls[i].Modify(m.ctx, ns, key, func(item *Item) error {
		if d := read.differs(*item); d != "" {
			t.Fatalf("modify %s on %d read %s", key, i, d)
		}
		edit(t, item)
		s = changes(key, *item, read)
		return nil
	})
	if err != nil {
		t.Fatalf("modify %s on %d: %v", key, i, err)
	}
	m.written(t, i, before, s)
	m.stats.modifies++
}

var errAbort = errors.New("abort")

// abort: the app edits a struct it holds and puts it in a transaction
// that then fails. Nothing is written and the struct is as it was, edits
// included, so a later save writes them.
func (m *resMachine) abort(t *rapid.T) {
	if len(m.held) == 0 {
		t.Skip("nothing held")
	}
	h := m.held[rapid.IntRange(0, len(m.held)-1).Draw(t, "held")]
	edit(t, &h.item)
	was := h.item
	before := m.vector(t, h.replica)
	err := m.net.Replica(h.replica).Update(m.ctx, ns, func(tx *converge.Tx) error {
		if _, err := m.colls[h.replica].Tx(tx).Put(&h.item); err != nil {
			return err
		}
		return errAbort
	})
	if !errors.Is(err, errAbort) {
		t.Fatalf("aborted put of %s on %d: %v", h.item.ID, h.replica, err)
	}
	if !reflect.DeepEqual(h.item, was) {
		t.Fatalf("an aborted put of %s on %d changed the struct from\n%+v\nto\n%+v", h.item.ID, h.replica, was, h.item)
	}
	if after := m.vector(t, h.replica); !after.Equal(before) {
		t.Fatalf("an aborted put on %d wrote: vector %v became %v", h.replica, before, after)
	}
	m.stats.aborted++
}

func (m *resMachine) sync(t *rapid.T) {
	from := m.replica(t)
	to := rapid.IntRange(0, m.net.N()-2).Draw(t, "to")
	if to >= from {
		to++
	}
	if _, err := m.net.Sync(m.ctx, from, to, ns); err != nil {
		t.Fatal(err)
	}
}

func (m *resMachine) deliver(t *rapid.T) {
	from := m.replica(t)
	to := rapid.IntRange(0, m.net.N()-2).Draw(t, "to")
	if to >= from {
		to++
	}
	if _, err := m.net.Deliver(m.ctx, from, to, ns, newRand(t), proptest.LossyDelivery); err != nil {
		t.Fatal(err)
	}
}

// tick moves time on (or not: equal HLCs on two replicas are then
// likely, and the replica id orders them), and may step a clock.
func (m *resMachine) tick(t *rapid.T) {
	m.now += rapid.SampledFrom([]int64{0, 1, 2}).Draw(t, "advance")
	if rapid.Bool().Draw(t, "step a clock") {
		m.skew[m.replica(t)] = rapid.Int64Range(-2, 2).Draw(t, "skew")
	}
	m.setClocks()
}

// check: every replica shows, for every record, the model's view of the
// saves its vector covers.
func (m *resMachine) check(t *rapid.T) {
	for i := range m.net.N() {
		vv := m.vector(t, i)
		for _, key := range m.keys {
			item, err := m.colls[i].Get(m.ctx, ns, key)
			if err != nil {
				t.Fatalf("get %s on %d: %v", key, i, err)
			}
			if d := m.model.view(key, vv).differs(item); d != "" {
				t.Fatalf("replica %d, record %s: %s", i, key, d)
			}
		}
	}
}

// finish syncs everything: all replicas converge, on the model's view of
// every save.
func (m *resMachine) finish(t *rapid.T) {
	if err := m.net.SyncAll(m.ctx, ns); err != nil {
		t.Fatal(err)
	}
	if err := m.net.CheckConverged(m.ctx, ns); err != nil {
		t.Fatal(err)
	}
	vv := m.vector(t, 0)
	if got, want := vv.Sum(), uint64(len(m.model.saves)); got != want {
		t.Fatalf("the replicas hold %d ops, the model %d saves", got, want)
	}
	m.check(t)
	m.stats.runs++
	for _, db := range m.net.Replicas() {
		c, err := db.ConflictCount(m.ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		m.stats.conflicts += int(c)
	}
}

// TestReadEditSave: 2 to 4 replicas run read-edit-save cycles on a few
// records: an app reads a record (Get) and holds the struct while other
// steps run (saves on other replicas, syncs, lossy deliveries), then
// changes some of its fields (registers, a max register, a set's elements,
// a counter) and puts it; or it reads, edits and writes in one
// transaction (Modify); or its put is in a transaction that fails. After
// every step each replica shows what the reference model gives for the
// saves it holds, in which each save applies only the fields its user
// changed since the read; a put leaves the struct holding the record as
// written, an aborted one leaves it as it was. After a full sync all
// replicas are equal, and equal to the model of every save.
func TestReadEditSave(t *testing.T) {
	st := &resStats{}
	defer func() { t.Log(st) }()
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(2, 4).Draw(rt, "replicas")
		dir := t.TempDir()
		net, err := proptest.Open(dir, n, converge.Options{})
		if err != nil {
			rt.Fatal(err)
		}
		defer func() {
			if err := net.Close(); err != nil {
				rt.Error(err)
			}
			_ = os.RemoveAll(dir)
		}()
		m := &resMachine{
			ctx: t.Context(), net: net, colls: make([]*converge.Collection[Item], n),
			keys: []string{"a", "b", "c"}[:rapid.IntRange(1, 3).Draw(rt, "keys")],
			now:  proptest.Epoch, skew: make([]int64, n), stats: st,
		}
		for i := range n {
			if m.colls[i], err = converge.NewCollection[Item](net.Replica(i), "items"); err != nil {
				rt.Fatal(err)
			}
		}
		m.setClocks()
		// Each record is created on replica 0 (a struct never read:
		// written whole) and reaches every replica.
		for _, key := range m.keys {
			before := m.vector(rt, 0)
			item := drawItem(rt, key)
			if _, err := m.colls[0].Put(m.ctx, ns, item); err != nil {
				rt.Fatal(err)
			}
			s := changes(key, *item, view{})
			s.title, s.rank, s.peak = &item.Title, &item.Rank, &item.Peak // a create writes every register
			m.written(rt, 0, before, s)
		}
		if err := net.SyncAll(m.ctx, ns); err != nil {
			rt.Fatal(err)
		}
		rt.Repeat(map[string]func(*rapid.T){
			"read":       m.read,
			"read again": m.read,
			"save":       m.save,
			"save again": m.save,
			"modify":     m.modify,
			"abort":      m.abort,
			"sync":       m.sync,
			"deliver":    m.deliver,
			"tick":       m.tick,
			"":           m.check,
		})
		m.finish(rt)
	})
}
