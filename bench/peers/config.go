package main

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// config holds the command's settings.
type config struct {
	Scenarios string // comma-separated names; empty: all
	JSON      bool
	Quick     bool
	List      bool
	Verbose   bool
	Runs      int
	Timeout   time.Duration // per scenario

	N     int // records of put and receive, per replica in merge
	SyncN int // records of put-sync (fsync every commit)
}

// defaultConfig returns the default sizes: the harness's replicate size,
// a minute or two on a 2-core machine.
func defaultConfig() config {
	return config{Runs: 3, Timeout: 10 * time.Minute, N: 20_000, SyncN: 2_000}
}

// quickConfig returns -quick's sizes: every scenario once at a small size,
// a few seconds (CI).
func quickConfig() config {
	return config{Runs: 1, Timeout: 2 * time.Minute, N: 1_000, SyncN: 100}
}

// parseFlags parses args into a config. Flags given explicitly override
// -quick's sizes.
func parseFlags(args []string) (config, error) {
	c := defaultConfig()
	fs := flag.NewFlagSet("peers", flag.ContinueOnError)
	fs.StringVar(&c.Scenarios, "scenario", "", "comma-separated scenarios to run (default: all; see -list)")
	fs.BoolVar(&c.JSON, "json", false, "print one JSON object per line instead of the table")
	fs.BoolVar(&c.Quick, "quick", false, "every scenario at a small size, one run each (CI)")
	fs.BoolVar(&c.List, "list", false, "list the scenarios and what each side does, and exit")
	fs.BoolVar(&c.Verbose, "v", false, "log progress to stderr")
	fs.IntVar(&c.Runs, "runs", c.Runs, "interleaved runs of each scenario's sides; the median is reported")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "time limit of one scenario")
	fs.IntVar(&c.N, "n", c.N, "records written in put and receive, and by each replica in merge")
	fs.IntVar(&c.SyncN, "sync-n", c.SyncN, "records written in put-sync (fsync every commit)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.Quick {
		q := quickConfig()
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["runs"] {
			c.Runs = q.Runs
		}
		if !set["timeout"] {
			c.Timeout = q.Timeout
		}
		if !set["n"] {
			c.N = q.N
		}
		if !set["sync-n"] {
			c.SyncN = q.SyncN
		}
	}
	var errs []error
	for name, v := range map[string]int{"runs": c.Runs, "n": c.N, "sync-n": c.SyncN} {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("-%s must be positive, got %d", name, v))
		}
	}
	if c.N < 2 {
		errs = append(errs, fmt.Errorf("-n must be at least 2 (merge shares n/2 keys), got %d", c.N))
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("-timeout must be positive"))
	}
	return c, errors.Join(errs...)
}

// summary lists the effective sizes as flags.
func (c config) summary() string {
	return fmt.Sprintf("-runs %d -n %d -sync-n %d", c.Runs, c.N, c.SyncN)
}

// selectScenarios returns the scenarios named in list (comma separated;
// empty means all), in the registry's order, or an error naming the
// unknown ones.
func selectScenarios(all []*scenario, list string) ([]*scenario, error) {
	if strings.TrimSpace(list) == "" {
		return all, nil
	}
	want := map[string]bool{}
	for name := range strings.SplitSeq(list, ",") {
		if name = strings.TrimSpace(name); name != "" {
			want[name] = true
		}
	}
	var out []*scenario
	for _, s := range all {
		if want[s.Name] {
			out = append(out, s)
			delete(want, s.Name)
		}
	}
	if len(want) > 0 {
		var known []string
		for _, s := range all {
			known = append(known, s.Name)
		}
		return nil, fmt.Errorf("unknown scenario(s) %s; known: %s",
			strings.Join(slices.Sorted(maps.Keys(want)), ", "), strings.Join(known, ", "))
	}
	return out, nil
}
