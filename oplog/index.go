package oplog

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/internal/mp"
	"github.com/convergedb/converge/materialize"
)

// Secondary indexes are local: a replica maintains the indexes its app
// declared (EnsureIndex), in the same batch as the states they index. The
// registry ('X' keys) persists the declarations, so writes keep indexes
// current from the moment a store opens. An index is registered only once
// built, so a crash during a build leaves it unregistered, to be rebuilt.
//
// A registry value is the msgpack array [format, [field...]]: the value
// key format the index's entries were built with ([crdt.ValueKeyFormat])
// and the indexed fields. A plain array of field names is format 1,
// written before the format was recorded. Open rebuilds every index of
// another format from the stored states before it returns, so no read
// ever sees entries in a format the code does not read.

func indexPrefix(ns, coll, name string) []byte {
	return appendString(appendString(nsKey(tagIndex, ns), coll), name)
}

func registryKey(coll, name string) []byte {
	return appendString(appendString([]byte{tagRegistry}, coll), name)
}

func encodeIndexDef(idx materialize.Index) []byte {
	b := mp.AppendArrayHeader(nil, 2)
	b = mp.AppendUint(b, crdt.ValueKeyFormat)
	b = mp.AppendArrayHeader(b, len(idx.Fields))
	for _, f := range idx.Fields {
		b = mp.AppendString(b, f)
	}
	return b
}

// decodeIndexDef decodes a registry value: the index and the format of
// its entries.
func decodeIndexDef(name string, b []byte) (idx materialize.Index, format uint64, err error) {
	bad := fmt.Errorf("index %q: bad definition", name)
	r := mp.NewReader(b)
	n, err := r.ArrayHeader()
	if err != nil {
		return idx, 0, bad
	}
	if c, err := r.Peek(); err == nil && (c&0xe0 == 0xa0 || c == 0xd9 || c == 0xda || c == 0xdb) {
		format = 1 // [field...]: before the format was recorded
	} else {
		if n != 2 {
			return idx, 0, bad
		}
		if format, err = r.Uint(); err != nil || format < 2 {
			return idx, 0, bad
		}
		if n, err = r.ArrayHeader(); err != nil {
			return idx, 0, bad
		}
	}
	idx = materialize.Index{Name: name, Fields: make([]string, n)}
	for i := range idx.Fields {
		if idx.Fields[i], err = r.String(); err != nil {
			return materialize.Index{}, 0, bad
		}
	}
	if r.Len() != 0 || n == 0 {
		return materialize.Index{}, 0, bad
	}
	return idx, format, nil
}

// loadIndexes reads the registry and rebuilds the indexes whose entries
// are of another value key format. Called from Open.
func (l *Log) loadIndexes() error {
	stales, err := l.readRegistry()
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range stales {
		// Open takes no context: the rebuild, once after an upgrade,
		// runs to completion. Until it is registered in the new format,
		// the index stays registered in its old one, so a crash here
		// means another rebuild at the next Open.
		err := l.writeIndexLocked(context.Background(), s.coll, s.idx)
		if err == nil {
			l.logger.Info("rebuilt index in the current key format", "collection", s.coll, "index", s.idx.Name,
				"format", s.format, "now", crdt.ValueKeyFormat)
			continue
		}
		// A state that does not decode must not keep the store from
		// opening: unregister the index (queries then scan), and let the
		// app's next EnsureIndex build it again and report the error.
		l.logger.Error("index not rebuilt in the current key format: unregistered", "collection", s.coll,
			"index", s.idx.Name, "err", err)
		if err := l.db.Delete(registryKey(s.coll, s.idx.Name), pebble.Sync); err != nil {
			return fmt.Errorf("unregister index %s.%s: %w", s.coll, s.idx.Name, pebbleErr(err))
		}
		l.mu.indexes[s.coll] = slices.DeleteFunc(l.mu.indexes[s.coll], func(x materialize.Index) bool { return x.Name == s.idx.Name })
	}
	return nil
}

// staleIndex is a registered index whose entries are of another value
// key format than the current one.
type staleIndex struct {
	coll   string
	idx    materialize.Index
	format uint64
}

// readRegistry loads the registry into l.mu.indexes and returns the
// indexes of another format.
func (l *Log) readRegistry() ([]staleIndex, error) {
	l.mu.indexes = make(map[string][]materialize.Index)
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagRegistry}, UpperBound: []byte{tagRegistry + 1}})
	if err != nil {
		return nil, pebbleErr(err)
	}
	defer it.Close()
	var stales []staleIndex
	for it.First(); it.Valid(); it.Next() {
		coll, rest, err := readString(it.Key()[1:])
		if err != nil {
			return nil, fmt.Errorf("%w: index registry key %q", ErrCorrupt, it.Key())
		}
		name, rest, err := readString(rest)
		if err != nil || len(rest) != 0 {
			return nil, fmt.Errorf("%w: index registry key %q", ErrCorrupt, it.Key())
		}
		idx, format, err := decodeIndexDef(name, it.Value())
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		l.mu.indexes[coll] = append(l.mu.indexes[coll], idx)
		if format != crdt.ValueKeyFormat {
			stales = append(stales, staleIndex{coll, idx, format})
		}
	}
	return stales, pebbleErr(it.Error())
}

// Indexes returns the indexes registered on collection coll.
func (l *Log) Indexes(coll string) []materialize.Index {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.mu.indexes[coll])
}

// EnsureIndex makes sure collection coll has index idx, in every namespace:
// if an index of that name with the same fields is registered it returns at
// once; otherwise it builds the index from the stored states (replacing an
// index of that name with other fields) and registers it. Building holds
// the write lock: writers wait until it is done.
func (l *Log) EnsureIndex(ctx context.Context, coll string, idx materialize.Index) error {
	if idx.Name == "" || len(idx.Fields) == 0 || coll == "" {
		return fmt.Errorf("oplog: ensure index: need a collection, a name and fields")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	for _, have := range l.mu.indexes[coll] {
		if have.Name == idx.Name && slices.Equal(have.Fields, idx.Fields) {
			return nil
		}
	}
	return l.buildIndexLocked(ctx, coll, idx)
}

// RebuildIndex rebuilds the registered index name of coll from the stored
// states.
func (l *Log) RebuildIndex(ctx context.Context, coll, name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	for _, idx := range l.mu.indexes[coll] {
		if idx.Name == name {
			return l.buildIndexLocked(ctx, coll, idx)
		}
	}
	return fmt.Errorf("oplog: rebuild index %s.%s: %w", coll, name, ErrNotFound)
}

// buildIndexLocked unregisters the index name, deletes its entries, writes
// entries for every stored state of coll, in batches, then registers it.
func (l *Log) buildIndexLocked(ctx context.Context, coll string, idx materialize.Index) error {
	if err := l.db.Delete(registryKey(coll, idx.Name), pebble.Sync); err != nil {
		return fmt.Errorf("oplog: build index %s.%s: %w", coll, idx.Name, pebbleErr(err))
	}
	l.mu.indexes[coll] = slices.DeleteFunc(l.mu.indexes[coll], func(x materialize.Index) bool { return x.Name == idx.Name })
	if err := l.writeIndexLocked(ctx, coll, idx); err != nil {
		return err
	}
	l.logger.Info("built index", "collection", coll, "index", idx.Name, "fields", idx.Fields)
	return nil
}

// writeIndexLocked replaces the entries of index idx of coll, in every
// namespace, with entries for every stored state, then registers the
// index in the current format.
func (l *Log) writeIndexLocked(ctx context.Context, coll string, idx materialize.Index) error {
	fail := func(err error) error {
		return fmt.Errorf("oplog: build index %s.%s: %w", coll, idx.Name, pebbleErr(err))
	}
	nss, err := l.namespacesLocked(ctx)
	if err != nil {
		return fail(err)
	}
	for _, ns := range nss {
		if err := l.writeIndexNamespace(ctx, ns, coll, idx); err != nil {
			return fail(err)
		}
	}
	// Registered last, with a sync that also makes the entries durable.
	if err := l.db.Set(registryKey(coll, idx.Name), encodeIndexDef(idx), pebble.Sync); err != nil {
		return fail(err)
	}
	l.mu.indexes[coll] = slices.DeleteFunc(l.mu.indexes[coll], func(x materialize.Index) bool { return x.Name == idx.Name })
	l.mu.indexes[coll] = append(l.mu.indexes[coll], idx)
	return nil
}

// writeIndexNamespace replaces the entries of index idx of coll in ns
// with entries for its stored states.
func (l *Log) writeIndexNamespace(ctx context.Context, ns, coll string, idx materialize.Index) error {
	prefix := indexPrefix(ns, coll, idx.Name)
	// Clear old entries (a rebuild, or a build a crash interrupted).
	// Only where there are some: a range deletion costs every later
	// read that crosses it, and a replica may hold many namespaces.
	stale, err := l.hasKeys(prefix)
	if err != nil {
		return err
	}
	if stale {
		if err := l.db.DeleteRange(prefix, prefixEnd(prefix), pebble.NoSync); err != nil {
			return err
		}
	}
	sp := appendString(nsKey(tagState, ns), coll)
	it, err := l.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: sp, UpperBound: prefixEnd(sp)})
	if err != nil {
		return err
	}
	b := l.db.NewBatch()
	for it.First(); it.Valid(); it.Next() {
		_, key, err := splitStateKey(it.Key(), len(nsKey(tagState, ns)))
		if err == nil {
			var r *crdt.Record
			if r, err = decodeStored(it.Value()); err == nil {
				for _, e := range materialize.IndexKeys(idx, r) {
					err = b.Set(indexEntryKey(prefix, e, key), nil, nil)
				}
			}
		}
		if err != nil {
			it.Close()
			b.Close()
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		if b.Len() > 4<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				it.Close()
				return err
			}
			b = l.db.NewBatch()
		}
	}
	if err := it.Close(); err != nil {
		b.Close()
		return err
	}
	return b.Commit(pebble.NoSync)
}

// DropIndex unregisters index name of coll and deletes its entries.
func (l *Log) DropIndex(ctx context.Context, coll, name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	if err := l.db.Delete(registryKey(coll, name), pebble.Sync); err != nil {
		return fmt.Errorf("oplog: drop index: %w", err)
	}
	l.mu.indexes[coll] = slices.DeleteFunc(l.mu.indexes[coll], func(x materialize.Index) bool { return x.Name == name })
	nss, err := l.namespacesLocked(ctx)
	if err != nil {
		return err
	}
	for _, ns := range nss {
		prefix := indexPrefix(ns, coll, name)
		stale, err := l.hasKeys(prefix)
		if err != nil {
			return fmt.Errorf("oplog: drop index: %w", err)
		}
		if !stale {
			continue
		}
		if err := l.db.DeleteRange(prefix, prefixEnd(prefix), pebble.Sync); err != nil {
			return fmt.Errorf("oplog: drop index: %w", err)
		}
	}
	return nil
}

// hasKeys reports whether any key starts with prefix.
func (l *Log) hasKeys(prefix []byte) (bool, error) {
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return false, pebbleErr(err)
	}
	found := it.First()
	return found, pebbleErr(it.Close())
}

func indexEntryKey(prefix, entry []byte, key string) []byte {
	k := make([]byte, 0, len(prefix)+len(entry)+len(key)+2)
	return appendString(append(append(k, prefix...), entry...), key)
}

// writeIndexes updates the indexes of a record's collection for the record
// going from prev to next.
func (b *batch) writeIndexes(indexes []materialize.Index, coll, key string, prev, next *crdt.Record) error {
	for _, idx := range indexes {
		del, add := materialize.IndexDiff(idx, prev, next)
		if len(del) == 0 && len(add) == 0 {
			continue
		}
		prefix := indexPrefix(b.ns, coll, idx.Name)
		for _, e := range del {
			if err := b.pb.Delete(indexEntryKey(prefix, e, key), nil); err != nil {
				return err
			}
		}
		for _, e := range add {
			if err := b.pb.Set(indexEntryKey(prefix, e, key), nil, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// IndexEntry is one entry of an index scan: the entry's value keys and the
// record's key.
type IndexEntry struct {
	Values []byte // the concatenated value keys
	Key    string // the record's key
}

// IndexScan yields the entries of index idx of coll in ns whose value keys
// fall in [lo, hi) (nil hi: unbounded), in key order or, with reverse, in
// reverse. It stops at the first error, which it yields with a zero entry.
func (l *Log) IndexScan(ctx context.Context, ns, coll string, idx materialize.Index, lo, hi []byte, reverse bool) iter.Seq2[IndexEntry, error] {
	return func(yield func(IndexEntry, error) bool) {
		if err := l.acquire(ctx); err != nil {
			yield(IndexEntry{}, err)
			return
		}
		defer l.release()
		prefix := indexPrefix(ns, coll, idx.Name)
		lower := append(slices.Clone(prefix), lo...)
		upper := prefixEnd(prefix)
		if hi != nil {
			upper = append(slices.Clone(prefix), hi...)
		}
		it, err := l.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			yield(IndexEntry{}, fmt.Errorf("oplog: index scan: %w", pebbleErr(err)))
			return
		}
		defer it.Close()
		valid := it.First()
		if reverse {
			valid = it.Last()
		}
		for ; valid; valid = step(it, reverse) {
			e := it.Key()[len(prefix):]
			n, err := entryValuesLen(e, len(idx.Fields))
			var key string
			if err == nil {
				var rest []byte
				key, rest, err = readString(e[n:])
				if err == nil && len(rest) != 0 {
					err = errBadKey
				}
			}
			if err != nil {
				yield(IndexEntry{}, fmt.Errorf("%w: index entry %q: %w", ErrCorrupt, it.Key(), err))
				return
			}
			if !yield(IndexEntry{Values: bytes.Clone(e[:n]), Key: key}, nil) {
				return
			}
		}
		if err := it.Error(); err != nil {
			yield(IndexEntry{}, fmt.Errorf("oplog: index scan: %w", pebbleErr(err)))
		}
	}
}

func step(it *pebble.Iterator, reverse bool) bool {
	if reverse {
		return it.Prev()
	}
	return it.Next()
}

// entryValuesLen returns the length of the fields value keys at the start
// of an index entry.
func entryValuesLen(e []byte, fields int) (int, error) {
	n := 0
	for range fields {
		m, err := crdt.SkipValueKey(e[n:])
		if err != nil {
			return 0, err
		}
		n += m
	}
	return n, nil
}
