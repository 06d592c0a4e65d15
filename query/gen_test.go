package query

import (
	"math"

	"github.com/convergedb/converge/crdt"
	"pgregory.net/rapid"
)

// Generators of items and queries over a small value space, so that
// random predicates match some records and values collide often: equal
// numbers of different types, strings with shared prefixes and zero
// bytes, every value class.

var (
	numPool = [][]byte{vi(-2), vi(0), vf(0), vi(1), vf(1), vf32(1), vf(1.5), vi(2), vf(2.5), vi(3),
		vi(1 << 53), vf(1 << 53), vi(1<<53 + 1), vu(1 << 63), vf(1 << 63)}
	strPool  = [][]byte{vs(""), vs("a"), vstr8("a"), vs("a\x00"), vs("a\x00b"), vs("ab"), vs("abc"), vs("b"), vs("ba"), vs("\xff")}
	boolPool = [][]byte{vTrue, vFalse}
	binPool  = [][]byte{vbin(), vbin(0), vbin(1), vbin(1, 2)}
	// timePool holds timestamps whose msgpack bytes order otherwise than
	// their instants, and one instant in two forms.
	timePool = [][]byte{vt96(-1, 0), vt32(5), vt64(5, 0), vt64(5, 7), vt32(6), vt64(1<<33, 1), vt96(1<<40, 0)}
	// nanPool holds NaN, a number that no range holds or bounds.
	nanPool = [][]byte{vf(math.NaN())}
	// otherPool holds values no range can bound.
	otherPool = [][]byte{vNil, varr(), varr(vi(1)), varr(vs("a"), vi(1)), {0x81, 0xa1, 'k', 0x01}}
)

func pick(pools ...[][]byte) *rapid.Generator[[]byte] {
	var all [][]byte
	for _, p := range pools {
		all = append(all, p...)
	}
	return rapid.SampledFrom(all)
}

// genFieldValue draws the value of scalar field f: "a" mostly numbers,
// "b" mostly strings, "c" anything.
func genFieldValue(f string) *rapid.Generator[[]byte] {
	switch f {
	case "a":
		return rapid.OneOf(pick(numPool), pick(numPool), pick(numPool), pick(strPool, boolPool, nanPool))
	case "b":
		return rapid.OneOf(pick(strPool), pick(strPool), pick(numPool, binPool))
	}
	return rapid.OneOf(pick(timePool), pick(numPool, strPool, boolPool, binPool, timePool, nanPool, otherPool[1:]))
}

// elemPool are the elements sets hold (nil included: a set may hold it).
var elemPool = pick(numPool[:6], strPool[:5], boolPool[:1], binPool[:2], timePool[:3], otherPool[:2])

var scalarFields = []string{"a", "b", "c"}

// genItem draws a live record with id: fields a, b, c (each maybe
// missing) and set "tags" (maybe missing or empty). With drift, "c" is
// sometimes a set, as after a schema change.
func genItem(id string, drift bool) *rapid.Generator[Item] {
	return rapid.Custom(func(t *rapid.T) Item {
		var ops []crdt.FieldOp
		for _, f := range scalarFields {
			if f == "c" && drift && rapid.Bool().Draw(t, "c-is-set") {
				ops = append(ops, genSetOps(t, "c")...)
				continue
			}
			if rapid.IntRange(0, 3).Draw(t, f+"-present") > 0 {
				ops = append(ops, assign(f, genFieldValue(f).Draw(t, f)))
			}
		}
		ops = append(ops, genSetOps(t, "tags")...)
		return item(id, ops...)
	})
}

// genSetOps draws the ops of a set field: missing, empty (an element added
// and removed) or 1 to 3 elements.
func genSetOps(t *rapid.T, name string) []crdt.FieldOp {
	switch rapid.IntRange(0, 4).Draw(t, name+"-shape") {
	case 0:
		return nil
	case 1:
		e := elemPool.Draw(t, name+"-gone")
		return []crdt.FieldOp{add(name, e),
			{Name: name, Type: crdt.Remove, Value: e, Dots: []crdt.Dot{{Origin: testOrigin, Seq: 1}}}}
	}
	elems := rapid.SliceOfN(elemPool, 1, 3).Draw(t, name)
	return set(name, elems...)
}

// genIDs draws n distinct ids over a small alphabet with a zero byte.
func genIDs(min, max int) *rapid.Generator[[]string] {
	return rapid.SliceOfNDistinct(rapid.StringMatching(`[ab\x00é]{1,3}`), min, max, rapid.ID[string])
}

func genItems(t *rapid.T, drift bool, min, max int) []Item {
	n := rapid.IntRange(min, max).Draw(t, "n")
	idl := genIDs(n, n).Draw(t, "ids")
	items := make([]Item, len(idl))
	for i, id := range idl {
		items[i] = genItem(id, drift).Draw(t, "item")
	}
	return items
}

var predFields = []string{"a", "b", "c", "tags", IDField}

// genCond draws a valid condition.
func genCond() *rapid.Generator[Pred] {
	return rapid.Custom(func(t *rapid.T) Pred {
		f := rapid.SampledFrom(predFields).Draw(t, "field")
		op := Op(rapid.IntRange(int(Eq), int(StartsWith)).Draw(t, "op"))
		if f == IDField && rapid.Bool().Draw(t, "id-string") {
			// Ids are strings: draw string values for them too.
			return &Cond{Field: f, Op: op, Values: genValues(t, op, true)}
		}
		return &Cond{Field: f, Op: op, Values: genValues(t, op, false)}
	})
}

func genValues(t *rapid.T, op Op, idLike bool) [][]byte {
	any := pick(numPool, strPool, boolPool, binPool, timePool, nanPool, otherPool, [][]byte{vMissing})
	if idLike {
		any = rapid.Map(rapid.StringMatching(`[ab\x00é]{0,3}`), vs)
	}
	ranged := rapid.OneOf(pick(numPool), pick(strPool), pick(boolPool), pick(binPool), pick(timePool))
	if idLike {
		ranged = any
	}
	switch op {
	case Eq, Ne:
		return [][]byte{any.Draw(t, "v")}
	case In:
		return rapid.SliceOfN(any, 1, 3).Draw(t, "vs")
	case Gt, Gte, Lt, Lte:
		return [][]byte{ranged.Draw(t, "v")}
	case Between:
		lo := ranged.Draw(t, "lo")
		var pool [][]byte
		for _, p := range [][][]byte{numPool, strPool, boolPool, binPool, timePool} {
			if classOf(p[0]) == classOf(lo) {
				pool = p
			}
		}
		hi := lo
		if !idLike {
			hi = rapid.SampledFrom(pool).Draw(t, "hi")
		} else {
			hi = any.Draw(t, "hi")
		}
		if crdt.CompareValues(lo, hi) > 0 {
			lo, hi = hi, lo
		}
		return [][]byte{lo, hi}
	case Contains:
		if idLike {
			return [][]byte{any.Draw(t, "v")}
		}
		return [][]byte{pick(numPool, strPool, boolPool, binPool, timePool, otherPool).Draw(t, "v")}
	}
	if idLike {
		return [][]byte{any.Draw(t, "v")}
	}
	return [][]byte{pick(strPool).Draw(t, "v")}
}

// genPred draws a predicate nested up to depth groups.
func genPred(depth int) *rapid.Generator[Pred] {
	if depth == 0 {
		return genCond()
	}
	return rapid.Custom(func(t *rapid.T) Pred {
		switch rapid.IntRange(0, 4).Draw(t, "kind") {
		case 0, 1:
			return genCond().Draw(t, "cond")
		case 2, 3:
			return &And{Preds: rapid.SliceOfN(genPred(depth-1), 0, 3).Draw(t, "and")}
		}
		return &Or{Preds: rapid.SliceOfN(genPred(depth-1), 1, 3).Draw(t, "or")}
	})
}

// genOrder draws an Order over the fields (sets and the id included).
func genOrder() *rapid.Generator[[]Order] {
	return rapid.SliceOfN(rapid.Custom(func(t *rapid.T) Order {
		return Order{
			Field: rapid.SampledFrom([]string{"a", "b", "c", "tags", IDField}).Draw(t, "field"),
			Desc:  rapid.Bool().Draw(t, "desc"),
		}
	}), 0, 3)
}

// genWhere draws a Where: nil, a condition, or a group.
func genWhere() *rapid.Generator[Pred] {
	return rapid.OneOf(rapid.Just[Pred](nil), genPred(0), genPred(2), genPred(3))
}

// genPlannableWhere draws a Where that indexes can serve: conditions on
// indexed fields with values from their own pools, combined by a top-level
// And, with Ors of such conditions.
func genPlannableWhere() *rapid.Generator[Pred] {
	c := rapid.Custom(func(t *rapid.T) Pred {
		f := rapid.SampledFrom([]string{"a", "a", "b", "b", "tags", "c"}).Draw(t, "field")
		op := rapid.SampledFrom([]Op{Eq, Eq, In, Gt, Gte, Lt, Lte, Between, StartsWith, Contains}).Draw(t, "op")
		pool := genFieldValue(f)
		if f == "tags" {
			pool = elemPool
		}
		switch op {
		case Contains:
			if f == "b" {
				pool = pick(strPool)
			}
		case StartsWith:
			pool = pick(strPool)
		case Gt, Gte, Lt, Lte, Between:
			pool = rapid.Map(pool, func(v []byte) []byte {
				if rangeClass(classOf(v)) && !isNaN(v) {
					return v
				}
				return vi(1)
			})
		}
		switch op {
		case In:
			return &Cond{Field: f, Op: op, Values: rapid.SliceOfN(pool, 1, 3).Draw(t, "vs")}
		case Between:
			lo, hi := pool.Draw(t, "lo"), pool.Draw(t, "hi")
			if classOf(lo) != classOf(hi) {
				hi = lo
			}
			if crdt.CompareValues(lo, hi) > 0 {
				lo, hi = hi, lo
			}
			return &Cond{Field: f, Op: op, Values: [][]byte{lo, hi}}
		}
		v := pool.Draw(t, "v")
		if op == Contains && len(v) == 0 {
			v = vi(1)
		}
		return &Cond{Field: f, Op: op, Values: [][]byte{v}}
	})
	or := rapid.Custom(func(t *rapid.T) Pred {
		return &Or{Preds: rapid.SliceOfN(rapid.OneOf(c, rapid.Custom(func(t *rapid.T) Pred {
			return &And{Preds: rapid.SliceOfN(c, 1, 2).Draw(t, "and")}
		})), 1, 3).Draw(t, "or")}
	})
	return rapid.Custom(func(t *rapid.T) Pred {
		return &And{Preds: rapid.SliceOfN(rapid.OneOf(c, c, c, or), 1, 3).Draw(t, "conj")}
	})
}
