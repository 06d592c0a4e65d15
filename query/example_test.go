package query_test

import (
	"fmt"

	"github.com/convergedb/converge/crdt"
	"github.com/convergedb/converge/hlc"
	"github.com/convergedb/converge/query"
)

// task builds a live record with a status, a priority and tags.
func task(id, status string, priority int64, tags ...string) query.Item {
	fields := []crdt.FieldOp{
		{Name: "status", Type: crdt.Assign, Value: crdt.EncodeString(status)},
		{Name: "priority", Type: crdt.Assign, Value: crdt.EncodeInt(priority)},
	}
	for _, t := range tags {
		fields = append(fields, crdt.FieldOp{Name: "tags", Type: crdt.Add, Value: crdt.EncodeString(t)})
	}
	r := &crdt.Record{}
	r.Apply(&crdt.Op{Namespace: "ns", Collection: "tasks", Key: id,
		Dot: crdt.Dot{Origin: crdt.ReplicaID{1, 15: 1}, Seq: 1}, HLC: hlc.New(1, 0), CL: 1, Fields: fields})
	return query.Item{ID: id, Rec: r}
}

func Example() {
	items := []query.Item{
		task("t1", "open", 2, "ui"),
		task("t2", "open", 5, "db", "urgent"),
		task("t3", "done", 9),
		task("t4", "open", 5),
		task("t5", "open", 1, "urgent"),
	}
	q := query.Query{
		Where: &query.And{Preds: []query.Pred{
			&query.Cond{Field: "status", Op: query.Eq, Values: [][]byte{crdt.EncodeString("open")}},
			&query.Or{Preds: []query.Pred{
				&query.Cond{Field: "priority", Op: query.Gte, Values: [][]byte{crdt.EncodeInt(3)}},
				&query.Cond{Field: "tags", Op: query.Contains, Values: [][]byte{crdt.EncodeString("urgent")}},
			}},
		}},
		Order: []query.Order{{Field: "priority", Desc: true}},
		Limit: 2,
	}
	fmt.Println(q.Where)
	for {
		page, next, err := q.Run(items)
		if err != nil {
			fmt.Println(err)
			return
		}
		for _, it := range page {
			p, _ := it.Rec.Get("priority")
			fmt.Printf("%s priority %x\n", it.ID, p.Value)
		}
		if next == "" {
			break
		}
		fmt.Println("-- next page")
		q.After = next
	}
	// Output:
	// (status = "open" and (priority >= 3 or tags contains "urgent"))
	// t4 priority 05
	// t2 priority 05
	// -- next page
	// t5 priority 01
}

func ExampleQuery_Explain() {
	indexes := []query.Index{
		{Name: "by_status", Fields: []string{"status"}},
		{Name: "by_prio", Fields: []string{"priority"}},
		{Name: "by_sp", Fields: []string{"status", "priority"}},
		{Name: "by_tags", Fields: []string{"tags"}, Sets: []string{"tags"}},
	}
	eq := func(f string, v []byte) *query.Cond { return &query.Cond{Field: f, Op: query.Eq, Values: [][]byte{v}} }
	open := eq("status", crdt.EncodeString("open"))
	s, n := crdt.EncodeString, crdt.EncodeInt
	for _, q := range []query.Query{
		{Where: open},
		{Where: open, Order: []query.Order{{Field: "priority", Desc: true}}},
		{Where: &query.Cond{Field: "status", Op: query.In, Values: [][]byte{s("a"), s("b")}}, Order: []query.Order{{Field: "priority"}}},
		{Where: eq("priority", n(1))},
		{Where: &query.And{Preds: []query.Pred{
			&query.Cond{Field: "priority", Op: query.Gt, Values: [][]byte{n(3)}},
			&query.Cond{Field: "priority", Op: query.Lte, Values: [][]byte{n(9)}},
		}}},
		{Order: []query.Order{{Field: "priority"}}},
		{Where: &query.Cond{Field: "tags", Op: query.Contains, Values: [][]byte{s("go")}}},
		{Where: &query.Or{Preds: []query.Pred{open, eq("priority", n(1))}}},
		{Where: &query.Cond{Field: "title", Op: query.StartsWith, Values: [][]byte{s("re")}}, Order: []query.Order{{Field: "title"}}},
	} {
		fmt.Printf("%-60s %s\n", q.String(), q.Explain(indexes))
	}
	// Output:
	// where status = "open"                                        index by_status [status = "open"], ordered
	// where status = "open" order by priority desc                 index by_sp [status = "open"], reverse, ordered
	// where status in ("a", "b") order by priority                 index by_sp [status in ("a", "b")], merge 2 ranges
	// where priority = 1                                           index by_prio [priority = 1], merge 2 ranges
	// where (priority > 3 and priority <= 9)                       index by_prio [priority > 3, priority <= 9], sort by id
	// order by priority                                            index by_prio [all], ordered
	// where tags contains "go"                                     index by_tags [tags contains "go"], dedupe, ordered
	// where (status = "open" or priority = 1)                      scan, sort by id
	// where title startsWith "re" order by title                   scan, sort by title
}
