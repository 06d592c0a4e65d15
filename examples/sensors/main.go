// Command sensors is an edge fleet over NATS leaf nodes, in one process.
//
// A hub NATS server runs the control room's replica. Each site runs its
// own NATS server, a leaf node of the hub (linked through a TCP proxy that
// can cut the link), and one replica that records its sensors' readings in
// the namespace "fleet.<site>" and raises alerts in "fleet.alerts", which
// every replica holds. Namespaces are hierarchical: the NATS transport maps
// their dots onto subject tokens, so a permission like
// "converge.fleet.oslo.>" confines a site to its own data.
//
// The story: every site takes readings; one site's link is cut while every
// site keeps writing and the control room acknowledges alerts; the link
// heals, and every replica converges: fleet.alerts has the same state hash
// everywhere, and the control room holds every reading of every site. The
// last line is "converged: <sites> sites, <readings> readings".
//
//	go run ./examples/sensors [-sites 3] [-readings 20] [-v]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/convergedb/converge"
	"github.com/convergedb/converge/internal/embednats"
	"github.com/convergedb/converge/proptest"
	natstransport "github.com/convergedb/converge/transport/nats"
)

// Reading is a sensor's record in its site's namespace: the latest
// reading, the highest ever and how many were taken.
type Reading struct {
	ID         string  `msgpack:"-" converge:"id"` // the sensor's id
	Site       string  `msgpack:"site"`
	Celsius    float64 `msgpack:"celsius"`                    // the latest reading
	MaxCelsius float64 `msgpack:"max_celsius" converge:"max"` // the highest: concurrent offers keep the greatest
	Count      int64   `msgpack:"count" converge:"counter"`   // readings taken: concurrent increments add up
	Meta       converge.Meta
}

// Alert is a sensor that read at least alertCelsius, in fleet.alerts.
// Sites raise and update alerts; the control room acknowledges them.
type Alert struct {
	ID         string  `msgpack:"-" converge:"id"` // the sensor's id
	Site       string  `msgpack:"site"`
	MaxCelsius float64 `msgpack:"max_celsius" converge:"max"`
	Count      int64   `msgpack:"count" converge:"counter"` // readings at or above the threshold
	Acked      bool    `msgpack:"acked"`                    // seen by the control room
	Meta       converge.Meta
}

const (
	alertsNS       = "fleet.alerts"
	alertCelsius   = 30.0
	sensorsPerSite = 3
	// bound bounds every wait: a failure bound, never a way to synchronize.
	bound = time.Minute
	// heartbeat is the NATS transports' vector announcement interval:
	// after the heal, announcements show each side what it lacks.
	heartbeat = 200 * time.Millisecond
)

var siteNames = []string{"oslo", "lima", "pune", "kobe", "nice", "bonn", "riga", "doha", "cork", "apia", "baku", "lyon"}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "sensors:", err)
		os.Exit(1)
	}
}

type config struct {
	sites, readings int
	verbose         bool
}

// run parses args and runs the story, printing it to stdout. With -v it
// logs to stderr.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	var cfg config
	fs := flag.NewFlagSet("sensors", flag.ContinueOnError)
	fs.IntVar(&cfg.sites, "sites", 3, fmt.Sprintf("number of edge sites (1 to %d)", len(siteNames)))
	fs.IntVar(&cfg.readings, "readings", 20, "readings each site takes, half before the cut and half during it (1 to 10000)")
	fs.BoolVar(&cfg.verbose, "v", false, "verbose: log to stderr, and show timings and transport counters")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: sensors [-sites N] [-readings N] [-v]")
		fmt.Fprintln(fs.Output(), "\nAn edge fleet over NATS leaf nodes: a cut link, writes on both sides, the heal.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case cfg.sites < 1 || cfg.sites > len(siteNames):
		return fmt.Errorf("-sites must be 1 to %d", len(siteNames))
	case cfg.readings < 1 || cfg.readings > 10000:
		return errors.New("-readings must be 1 to 10000")
	}
	return story(ctx, cfg, stdout)
}

// replica is a site's replica or the control room's.
type replica struct {
	name     string
	ns       string // the site's namespace; "" for the control room
	db       *converge.DB
	readings *converge.Collection[Reading]
	alerts   *converge.Collection[Alert]
	tr       *natstransport.Transport
	rep      *converge.Replicator

	// A site's own bookkeeping, to check the control room's view.
	rng    *rand.Rand
	taken  int
	max    map[string]float64 // sensor -> highest reading taken
	raised map[string]int     // sensor -> alert updates while cut off
}

func story(ctx context.Context, cfg config, stdout io.Writer) (err error) {
	p := func(format string, args ...any) { fmt.Fprintf(stdout, format+"\n", args...) }
	logger := slog.New(slog.DiscardHandler)
	if cfg.verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	dir, err := os.MkdirTemp("", "converge-sensors-")
	if err != nil {
		return err
	}
	// Everything started is stopped, in reverse order, and the stores
	// removed.
	var closers []func() error
	defer func() {
		for _, c := range slices.Backward(closers) {
			err = errors.Join(err, c())
		}
		err = errors.Join(err, os.RemoveAll(dir))
	}()
	stopping := func(f func()) func() error { return func() error { f(); return nil } }

	// The NATS servers: the hub, and one leaf node per site, linked to it
	// through a proxy that can cut the link.
	o := embednats.Options()
	o.ServerName = "hub"
	o.LeafNode.Host, o.LeafNode.Port = "127.0.0.1", server.RANDOM_PORT
	hubSrv, err := embednats.Start(o)
	if err != nil {
		return err
	}
	closers = append(closers, stopping(hubSrv.Stop))
	names := siteNames[:cfg.sites]
	edges := make([]*embednats.Node, len(names))
	links := make([]*embednats.Proxy, len(names))
	for i, name := range names {
		if links[i], err = embednats.NewProxy(hubSrv.LeafURL().Host); err != nil {
			return err
		}
		closers = append(closers, links[i].Close)
		if edges[i], err = embednats.Leaf(name, links[i].URL("nats-leaf")); err != nil {
			return err
		}
		closers = append(closers, stopping(edges[i].Stop))
	}
	if err := embednats.WaitLeafNodes(hubSrv, len(names), bound); err != nil {
		return err
	}

	// The replicas: the control room on the hub, with every namespace;
	// each site on its own server, with its namespace and the alerts.
	open := func(name, url string, namespaces ...string) (*replica, error) {
		r := &replica{name: name, max: map[string]float64{}, raised: map[string]int{}}
		log := logger.With("replica", name)
		var err error
		// NoSync: the stores live in a temp dir removed at the end.
		if r.db, err = converge.Open(filepath.Join(dir, name), converge.Options{Durability: converge.NoSync, Logger: log}); err != nil {
			return nil, err
		}
		closers = append(closers, r.db.Close)
		if r.readings, err = converge.NewCollection[Reading](r.db, "readings"); err != nil {
			return nil, err
		}
		if r.alerts, err = converge.NewCollection[Alert](r.db, "alerts"); err != nil {
			return nil, err
		}
		if r.tr, err = natstransport.Connect(url, natstransport.Options{Store: r.db.SyncStore(), Heartbeat: heartbeat, Logger: log}, nats.Name(name)); err != nil {
			return nil, err
		}
		closers = append(closers, r.tr.Close)
		r.rep, err = r.db.OpenReplicator(r.tr, converge.ReplicatorOptions{
			Namespaces: namespaces,
			Interval:   2 * time.Second, // anti-entropy also heals what the live path missed
			MinBackoff: 20 * time.Millisecond,
			MaxBackoff: 250 * time.Millisecond,
			Logger:     log,
		})
		if err != nil {
			return nil, err
		}
		closers = append(closers, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), bound)
			defer cancel()
			return r.rep.Close(ctx)
		})
		return r, nil
	}
	var sites []*replica
	controlNS := []string{alertsNS}
	for i, name := range names {
		ns := "fleet." + name
		controlNS = append(controlNS, ns)
		s, err := open(name, edges[i].ClientURL(), ns, alertsNS)
		if err != nil {
			return err
		}
		s.ns = ns
		s.rng = rand.New(rand.NewPCG(uint64(i)+1, 1)) // the same readings every run
		sites = append(sites, s)
	}
	control, err := open("control", hubSrv.ClientURL(), controlNS...)
	if err != nil {
		return err
	}
	all := append([]*replica{control}, sites...)
	cut, connected := sites[0], sites[1:]
	width := len("control room")

	p("Converge sensors: an edge fleet of %d sites over NATS leaf nodes, in one process.", len(sites))
	p("  hub: a NATS server, and the control room's replica")
	p("  %s: each a NATS server of its own (a leaf node of the hub) and the site's replica", strings.Join(names, ", "))
	p("Namespaces are hierarchical; the NATS transport maps them onto subjects:")
	nsWidth := len(alertsNS)
	for _, s := range sites {
		nsWidth = max(nsWidth, len(s.ns))
	}
	for _, s := range sites {
		p("  %-*s -> %-*s replicated by %s and the control room", nsWidth, s.ns, nsWidth+len("converge.{ops,sync}")+1, subjects(s.ns), s.name)
	}
	p("  %-*s -> %-*s replicated by every replica", nsWidth, alertsNS, nsWidth+len("converge.{ops,sync}")+1, subjects(alertsNS))
	p("  so a NATS permission on converge.fleet.%s.> (and the alerts) confines %s to its own data.", cut.name, cut.name)
	p("")

	// 1. Connected: every site takes readings.
	first := cfg.readings / 2
	p("1. Each site takes %d readings from its %d sensors; a reading of %.0f°C or more raises an alert.", first, sensorsPerSite, alertCelsius)
	for _, s := range sites {
		if err := s.take(ctx, first, 0, false); err != nil {
			return err
		}
	}
	if err := waitConverged(ctx, control, sites, sites); err != nil {
		return fmt.Errorf("before the cut: %w", err)
	}
	// One sync each, so the cut site's replicator knows the hub holds its
	// ops: its pending counts below are then exactly the writes made while
	// apart.
	for _, ns := range []string{cut.ns, alertsNS} {
		if _, err := cut.rep.SyncNow(ctx, ns); err != nil {
			return fmt.Errorf("%s: sync %s: %w", cut.name, ns, err)
		}
	}
	alerts, _, err := countAlerts(ctx, control)
	if err != nil {
		return err
	}
	h, err := control.db.Admin().StateHash(ctx, alertsNS)
	if err != nil {
		return err
	}
	p("   The control room holds all %d readings; %s raised, %s has state %s on every replica.", first*len(sites), plural(alerts, "alert"), alertsNS, short(h))
	p("")

	// 2. The cut.
	links[0].Cut()
	if err := waitLeafGone(ctx, edges[0]); err != nil {
		return err
	}
	p("2. %s's link to the hub is cut: {%s} | {control room%s}. Both sides keep working:", cut.name, cut.name, prefixed(", ", namesOf(connected)))
	n, err := ackAll(ctx, control)
	if err != nil {
		return err
	}
	p("   the control room acknowledges the %s it holds;", plural(n, "alert"))
	second := cfg.readings - first
	p("   every site takes %d more readings; %s's cooling fails and its readings run hot.", second, cut.name)
	for _, s := range sites {
		hot := 0.0
		if s == cut {
			hot = 5
		}
		if err := s.take(ctx, second, hot, s == cut); err != nil {
			return err
		}
	}
	if err := waitConverged(ctx, control, connected, append([]*replica{control}, connected...)); err != nil {
		return fmt.Errorf("during the cut: %w", err)
	}
	p("   While apart, the sides differ:")
	for _, r := range []*replica{cut, control} {
		alerts, acked, err := countAlerts(ctx, r)
		if err != nil {
			return err
		}
		h, err := r.db.Admin().StateHash(ctx, alertsNS)
		if err != nil {
			return err
		}
		held, err := readingsOf(ctx, r, cut.ns)
		if err != nil {
			return err
		}
		p("   %-*s %s: %d readings; %s: %s (%d acknowledged), state %s",
			width+1, nameOf(r)+":", cut.ns, held, alertsNS, plural(alerts, "alert"), acked, short(h))
	}
	var pending []string
	for _, ns := range []string{cut.ns, alertsNS} {
		st, err := cut.rep.Status(ctx, ns)
		if err != nil {
			return err
		}
		pending = append(pending, fmt.Sprintf("%d in %s", st.Pending, ns))
	}
	p("   %s's replicator reports ops pending, %s: they wait in its log, the offline queue.", cut.name, strings.Join(pending, " and "))
	p("")

	// 3. The heal.
	started := time.Now()
	links[0].Heal()
	if err := embednats.WaitLeafNodes(edges[0], 1, bound); err != nil {
		return err
	}
	p("3. The link heals. The replicas' vector announcements show each side what it lacks and")
	p("   they fetch it from each other; %s's replicator, retrying, syncs its queue.", cut.name)
	if err := waitConverged(ctx, control, sites, all); err != nil {
		return fmt.Errorf("after the heal: %w", err)
	}
	if err := waitDrained(ctx, cut.rep); err != nil {
		return fmt.Errorf("%s's queue: %w", cut.name, err)
	}
	p("   %s's queue drained: 0 ops pending.", cut.name)
	if cfg.verbose {
		p("   (healed and converged in %v)", time.Since(started).Round(time.Millisecond))
	}
	p("")

	// 4. The converged fleet, as the control room sees it, checked against
	// what each site took.
	p("4. The control room's view, the same as each site's:")
	total := 0
	for _, s := range sites {
		line, err := checkSite(ctx, control, s)
		if err != nil {
			return err
		}
		p("   %s", line)
		total += s.taken
	}
	h, err = control.db.Admin().StateHash(ctx, alertsNS)
	if err != nil {
		return err
	}
	p("   %s, state %s on all %d replicas:", alertsNS, short(h), len(all))
	for a, err := range control.alerts.All(ctx, alertsNS) {
		if err != nil {
			return err
		}
		ack := "not acknowledged"
		if a.Acked {
			ack = "acknowledged"
			if n := cut.raised[a.ID]; n > 0 {
				ack += fmt.Sprintf(" while %s, apart, raised it %s more: the merge keeps both", cut.name, plural(n, "time"))
			}
		}
		p("     %-7s max %.1f°C, %s, %s", a.ID, a.MaxCelsius, plural(int(a.Count), "hot reading"), ack)
	}
	if cfg.verbose {
		p("   Transport counters:")
		for _, r := range all {
			st := r.tr.Stats()
			p("   %-*s published %d ops live, received %d, %d targeted fetches, %d anti-entropy requests sent, %d served",
				width+1, nameOf(r)+":", st.PublishedOps, st.ReceivedOps, st.Fetches, st.Requests, st.Served)
		}
	}
	p("")
	p("converged: %d sites, %d readings", len(sites), total)
	return nil
}

// take records n readings of the site's sensors, each hot degrees above
// what its sensor would read, raising or updating an alert for each
// reading at or above alertCelsius.
func (s *replica) take(ctx context.Context, n int, hot float64, apart bool) error {
	for range n {
		sensor := fmt.Sprintf("%s-%d", s.name, s.taken%sensorsPerSite+1)
		c := 18 + 8*s.rng.Float64()
		if s.rng.IntN(4) == 0 {
			c += 8 // a spike
		}
		c = math.Round((c+hot)*10) / 10
		s.taken++
		s.max[sensor] = max(s.max[sensor], c)
		err := upsert(ctx, s.db, s.readings, s.ns, sensor,
			&Reading{ID: sensor, Site: s.name, Celsius: c, MaxCelsius: c, Count: 1},
			converge.Set("celsius", c), converge.Set("max_celsius", c), converge.Increment("count", 1))
		if err != nil {
			return fmt.Errorf("%s: reading: %w", s.name, err)
		}
		if c < alertCelsius {
			continue
		}
		err = upsert(ctx, s.db, s.alerts, alertsNS, sensor,
			&Alert{ID: sensor, Site: s.name, MaxCelsius: c, Count: 1},
			converge.Set("max_celsius", c), converge.Increment("count", 1))
		if err != nil {
			return fmt.Errorf("%s: alert: %w", s.name, err)
		}
		if apart {
			s.raised[sensor]++
		}
	}
	return nil
}

// upsert creates record id of ns as v, or applies updates to it if it
// exists, in one transaction.
func upsert[T any](ctx context.Context, db *converge.DB, c *converge.Collection[T], ns, id string, v *T, updates ...converge.FieldUpdate) error {
	return db.Update(ctx, ns, func(tx *converge.Tx) error {
		ct := c.Tx(tx)
		_, err := ct.Get(id)
		switch {
		case errors.Is(err, converge.ErrNotFound):
			_, err = ct.Put(v)
			return err
		case err != nil:
			return err
		}
		return ct.Update(id, updates...)
	})
}

// ackAll acknowledges every alert r holds, in one transaction, and
// returns how many.
func ackAll(ctx context.Context, r *replica) (int, error) {
	var ids []string
	for a, err := range r.alerts.All(ctx, alertsNS) {
		if err != nil {
			return 0, err
		}
		if !a.Acked {
			ids = append(ids, a.ID)
		}
	}
	err := r.db.Update(ctx, alertsNS, func(tx *converge.Tx) error {
		for _, id := range ids {
			if err := r.alerts.Tx(tx).Update(id, converge.Set("acked", true)); err != nil {
				return err
			}
		}
		return nil
	})
	return len(ids), err
}

func countAlerts(ctx context.Context, r *replica) (alerts, acked int, err error) {
	for a, err := range r.alerts.All(ctx, alertsNS) {
		if err != nil {
			return 0, 0, err
		}
		alerts++
		if a.Acked {
			acked++
		}
	}
	return alerts, acked, nil
}

// readingsOf returns how many readings r holds in ns: the sum of its
// sensors' counters.
func readingsOf(ctx context.Context, r *replica, ns string) (int, error) {
	n := 0
	for rd, err := range r.readings.All(ctx, ns) {
		if err != nil {
			return 0, err
		}
		n += int(rd.Count)
	}
	return n, nil
}

// checkSite checks that the control room holds every reading site s took,
// with the right maxima, and describes them.
func checkSite(ctx context.Context, control, s *replica) (string, error) {
	n, sensors, hottest, hot := 0, 0, "", math.Inf(-1)
	for rd, err := range control.readings.All(ctx, s.ns) {
		if err != nil {
			return "", err
		}
		if want := s.max[rd.ID]; rd.MaxCelsius != want {
			return "", fmt.Errorf("the control room has %s's max at %.1f°C, the site read %.1f°C", rd.ID, rd.MaxCelsius, want)
		}
		n += int(rd.Count)
		sensors++
		if rd.MaxCelsius > hot {
			hottest, hot = rd.ID, rd.MaxCelsius
		}
	}
	if n != s.taken {
		return "", fmt.Errorf("the control room holds %d of %s's %d readings", n, s.name, s.taken)
	}
	h, err := control.db.Admin().StateHash(ctx, s.ns)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%-11s %d sensors, %d readings, hottest %s at %.1f°C, state %s", s.ns, sensors, n, hottest, hot, short(h)), nil
}

// waitConverged waits until the control room holds the same state as
// each of sites in its namespace, and the replicas in alerting hold the
// same alerts, or bound passes: proptest.WaitConverged for each, which
// re-checks on every change, then all of them once more together.
func waitConverged(ctx context.Context, control *replica, sites, alerting []*replica) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	for {
		for _, s := range sites {
			if err := proptest.WaitConverged(ctx, s.ns, control.db, s.db); err != nil {
				return err
			}
		}
		if err := proptest.WaitConverged(ctx, alertsNS, dbsOf(alerting)...); err != nil {
			return err
		}
		agree := proptest.CheckConverged(ctx, alertsNS, dbsOf(alerting)...) == nil
		for _, s := range sites {
			agree = agree && proptest.CheckConverged(ctx, s.ns, control.db, s.db) == nil
		}
		if agree {
			return nil
		}
	}
}

// waitDrained waits on r's status stream until no namespace has pending
// ops.
func waitDrained(ctx context.Context, r *converge.Replicator) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	pending := map[string]uint64{}
	for st := range r.Statuses(ctx) {
		pending[st.Namespace] = st.Pending
		drained := true
		for _, n := range pending {
			drained = drained && n == 0
		}
		if drained && len(pending) > 0 {
			return nil
		}
	}
	return fmt.Errorf("ops still pending %v: %w", pending, context.Cause(ctx))
}

// waitLeafGone waits until edge has lost its leaf connection to the hub.
// Nothing announces it, so this polls the server's connection count.
func waitLeafGone(ctx context.Context, edge *embednats.Node) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	for edge.NumLeafNodes() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s still has a link to the hub: %w", edge.Name(), context.Cause(ctx))
		case <-time.After(5 * time.Millisecond): // polling a condition
		}
	}
	return nil
}

// subjects shows the subjects the NATS transport uses for ns (with the
// default prefix): <prefix>.<ns tokens>.ops and .sync.
func subjects(ns string) string {
	enc, err := natstransport.EncodeNamespace(ns)
	if err != nil {
		return err.Error()
	}
	return "converge." + enc + ".{ops,sync}"
}

func dbsOf(reps []*replica) []*converge.DB {
	var dbs []*converge.DB
	for _, r := range reps {
		dbs = append(dbs, r.db)
	}
	return dbs
}

func nameOf(r *replica) string {
	if r.ns == "" {
		return "control room"
	}
	return r.name
}

func namesOf(reps []*replica) string {
	var s []string
	for _, r := range reps {
		s = append(s, r.name)
	}
	return strings.Join(s, ", ")
}

func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

func short(hash string) string { return hash[:min(12, len(hash))] }

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
