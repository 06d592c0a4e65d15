// Package query holds Converge's queries: typed predicates over record
// fields, ordering, pages with cursors, and the planner that picks an
// index range for a query. It evaluates and plans; it owns no storage. The
// executor (the root package) reads the candidates a [Plan] names and
// feeds them through [Match], [Query.Compare] and the cursor, or hands
// every record to [Query.Run] for a scan.
//
// The package is pure: no I/O, no clocks, no goroutines, and no map
// iteration order reaches a result. Its values are not safe for
// concurrent mutation; a Query that nobody modifies may be used from
// several goroutines.
//
// A query:
//
//	q := query.Query{
//		Where: &query.And{Preds: []query.Pred{
//			&query.Cond{Field: "status", Op: query.Eq, Values: [][]byte{crdt.EncodeString("open")}},
//			&query.Or{Preds: []query.Pred{
//				&query.Cond{Field: "priority", Op: query.Gte, Values: [][]byte{crdt.EncodeInt(3)}},
//				&query.Cond{Field: "tags", Op: query.Contains, Values: [][]byte{crdt.EncodeString("urgent")}},
//			}},
//		}},
//		Order: []query.Order{{Field: "priority", Desc: true}},
//		Limit: 20,
//	}
//	if err := q.Validate(schema.Has); err != nil { ... } // errors.Is(err, query.ErrUnknownField)
//	page, next, err := q.Run(items)                      // a scan
//	q.After = next                                       // the following page
//
// Values are msgpack-encoded, as crdt holds them ([crdt.EncodeString],
// [crdt.EncodeInt], ...); an empty slice means "missing". A record's value
// of a field is its visible value ([crdt.Record.Get]): for a set, the
// array of its elements in [crdt.OrderValues] order; for a counter, its
// total. The field [IDField] ("id") is the record id, as a string.
//
// # Comparison rules
//
// Ordering uses [crdt.CompareValues], one total order over all values,
// which orders each Go type as Go does: missing first, then nil, false,
// true, numbers, strings, binary, timestamps, and anything else (arrays,
// maps, other extensions) by its encoding. Numbers compare exactly by
// value across integers and floats (1 == 1.0, 2^53+1 > 2^53 as a float),
// as cmp.Compare does: NaN below every other number, -0 equal to 0.
// Strings and binary compare by bytes; timestamps (msgpack extension -1,
// as a time.Time encodes, in any of its three forms) by instant. Equal
// values with different encodings (1.0 and 1) sort float first, and then
// items sort by id, so the order is total and matches an index. (The
// root package refuses to order a field whose Go type has no order.)
//
// Predicates:
//
//   - Eq(v) holds when the field's value compares equal to v: Eq(1) matches
//     1 and 1.0. A missing field equals only "missing" (an empty value, or
//     msgpack nil, which the crdt stores as unset): Eq(missing) finds the
//     records without the field.
//   - Ne(v) is not Eq(v): it matches missing fields and values of other
//     types.
//   - In(v1, v2, ...) is Eq to any of them.
//   - Gt, Gte, Lt, Lte and Between compare within the type of their bound
//     (bool, number, string, binary or timestamp; the two bounds of
//     Between are of one type): priority < 3 matches the numbers below 3,
//     never a missing priority, a string, a set or nil. As Go's < does,
//     they never hold for NaN. Bounds of other types, and NaN, are an
//     error from Validate, as is Between with low > high.
//   - Contains(v) on a set field, or a field holding an array, holds when
//     an element compares equal to v (so Contains(1) finds 1.0); on a
//     string field, when the string value v is a substring (bytewise);
//     otherwise it is false.
//   - StartsWith(s) holds for a string field starting with the string s.
//   - On a set field, Eq and the range operators see the whole set as an
//     array of its elements in [crdt.OrderValues] order: Eq(tags, ["a",
//     "b"]) matches exactly the set {a, b}; a range never matches a set.
//   - And matches when all its predicates do (an empty And: always); Or
//     when one does. Groups nest to any depth up to 1000.
//
// # Pages and cursors
//
// [Query.Compare] orders items by the Order entries, then by id, in the
// direction of the last entry (ascending without an Order). [Query.Run]
// returns a page of at most Limit items and, when more follow, a cursor:
// an opaque string holding the sort values and id of the page's last item
// (see # Cursor encoding). The next page holds the items that
// sort strictly after that position, so paging stays correct while
// records change, as users of infinite lists expect: a record added or
// changed to sort after the cursor shows up on a later page, one removed
// or moved before it does not, and no record is returned twice unless a
// change moved it from before the cursor to after it. Offset applies to
// the first page only. A cursor is bound to its Order by a fingerprint;
// one that is malformed, not in canonical form, or made for another order
// is [ErrBadCursor]. The Where may change between pages.
//
// # Cursor encoding
//
// A cursor is the unpadded base64url form of the msgpack array
//
//	[1, fingerprint, [value...], id]
//
//	1            version (positive fixint)
//	fingerprint  uint: FNV-1a 64 over the Order entries, each as
//	             msgpack (field str, desc bool)
//	value        bin: one per Order entry, the item's msgpack value of
//	             that field (empty bin: missing)
//	id           str: the item's id
//
// in msgpack's smallest forms. Decoding accepts only that canonical form
// (no other base64 text, no line breaks, no wider msgpack forms), so each
// position has exactly one cursor.
//
// # Planning
//
// An [Index] lists fields; its entries are, per live record, the value
// keys ([crdt.AppendValueKey]) of those fields concatenated (missing: the
// missing key; a set: one entry per element, an empty set as missing),
// then the record id, encoded to sort by its bytes. So entries sort by
// the fields' values in [Query.Compare] order, then by id. Index.Sets
// names the set fields.
//
// [Query.Plan] considers each index in turn. An index is usable when
// conditions of the top-level And (nested Ands flattened; or the whole
// Where) constrain its leading fields:
//
//   - an Eq prefix: each of the first fields pinned to points by Eq or In
//     (with values other than arrays and maps, which a set field would
//     index per element) or by Contains on a field Index.Sets names (Eq
//     on the element). A value's points are the keys of every value
//     equal to it: Eq(1) visits the keys of 1.0 and of 1, which differ
//     but are adjacent. The ranges are the cross product of the points of
//     the pinned fields (at most 256: beyond, fewer fields are pinned);
//   - then optionally a range on the next field, from Gt, Gte, Lt, Lte,
//     Between and StartsWith, several intersected (n > 1 and n < 9 is
//     one range); a range covers its bound's type only, as the operators
//     do, and contradictory ranges leave no ranges at all (Explain:
//     "empty");
//   - or an Or conjunct whose every branch is usable on the index: the
//     union of the branches' ranges, merged where they overlap. Each
//     branch is planned with the conditions beside the Or, so
//     a = 1 and (b = 2 or b = 3) can pin a and b.
//
// Ne, Contains on other fields (a substring or an array element can sit
// anywhere in the value's key), Eq on an array
// or map, conditions on the id (an index field named "id" is a stored
// field, not the id), and conditions on fields after the first one not
// pinned do not narrow the ranges. The executor re-checks every candidate
// with [Match], so ranges may hold records the query rejects, but they
// never miss a record it matches.
//
// Among usable indexes the planner prefers more pinned fields, then a
// range, then an Ordered plan, then a Merge plan, then fewer ranges, then
// the earlier index in the list. A plan is Ordered when reading its ranges
// yields the query's order: the index fields not pinned to a single key,
// then the id, are exactly the query's order (its Order entries less those
// on fields pinned to a single key, up to an entry on the id, then the id
// as the tie-break), all in one direction, read backward (Reverse) when
// that direction is descending; set fields that are not pinned order
// nothing. Merge is that test with every pinned field counted as single,
// for plans of several ranges: each range alone is in order. An index that
// constrains nothing but yields the Order is still used, over its full
// range. Otherwise the query is a scan. Examples, with indexes by_status
// [status], by_prio [priority], by_sp [status, priority] and by_tags
// [tags] (a set):
//
//	status = "open"                         index by_status [status = "open"], ordered
//	status = "open" order by priority desc  index by_sp [status = "open"], reverse, ordered
//	status in ("a", "b") order by priority  index by_sp [status in ("a", "b")], merge 2 ranges
//	priority = 1                            index by_prio [priority = 1], merge 2 ranges
//	priority > 3 and priority <= 9          index by_prio [priority > 3, priority <= 9], sort by id
//	order by priority                       index by_prio [all], ordered
//	tags contains "go"                      index by_tags [tags contains "go"], dedupe, ordered
//	status = "open" or priority = 1         scan, sort by id (no one index serves both)
//	title startsWith "re" order by title    scan, sort by title (no index on title)
//
// The first is Ordered by id because the index holds one status value
// there, and its entries end with the id. An In, or an Eq on a number (1
// and 1.0 have separate keys), gives several ranges, each in order: Merge.
// The set index may list a record once per element: dedupe.
//
// [Plan.String] (and [Query.Explain]) gives these texts.
//
// # Executing a plan
//
// For an index plan the executor reads the entries of each range, in
// order (last range first and each backward when Reverse), and then:
//
//  1. skips a record already seen, unless Unique;
//  2. keeps the records [Match] accepts (always: ranges are supersets);
//  3. unless Ordered, sorts them by [Query.Compare] (or, when Merge,
//     merges the ranges' streams by it);
//  4. keeps those [Query.AfterCursor] accepts, skips Offset of them on a
//     first page, keeps Limit, and returns [Query.CursorFor] of the last
//     one if any record follows.
//
// This yields exactly what [Query.Run] yields over every record; when
// Ordered, step 4 can stop the read at Offset+Limit+1 records. A scan
// plan is [Query.Run] over every live record.
package query
