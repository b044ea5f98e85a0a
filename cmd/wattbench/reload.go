package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The reload scenario, wattd alone (a node:cluster primary has nothing to
// compare): the hello fixture's app with 2 workers under the closed-loop
// keep-alive load, while wattd applies, one after the other and each in its
// own measured window,
//
//   - reload: `wattd ctl reload` of a configuration whose only change is
//     the app's environment, so that every worker is rolled;
//   - scale-up: `wattd ctl scale hello 4`;
//   - scale-down: `wattd ctl scale hello 1`.
//
// Each window is the operation plus reloadSettle of load before and after
// it; the goal is no failed or refused request in any of them.

// reloadOps are the measured operations, in order: each record's scenario.
var reloadOps = []string{"reload", "scale-up", "scale-down"}

// reloadSettle is the load run before and after each operation.
const reloadSettle = 500 * time.Millisecond

// reloadProject writes a copy of the hello fixture's watt.json into dir
// with the app's path made absolute and VERSION=version in its env.
func reloadProject(hello, dir, version string) error {
	data, err := os.ReadFile(filepath.Join(hello, "watt.json"))
	if err != nil {
		return err
	}
	var cfg map[string]any
	if err := json.Unmarshal(data, &cfg); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(hello, "watt.json"), err)
	}
	apps, _ := cfg["applications"].([]any)
	for _, a := range apps {
		app, ok := a.(map[string]any)
		if !ok {
			continue
		}
		if p, ok := app["path"].(string); ok && !filepath.IsAbs(p) {
			app["path"] = filepath.Join(hello, p)
		}
		app["env"] = map[string]any{"VERSION": version}
	}
	out, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".watt.json.tmp")
	if err := os.WriteFile(tmp, out, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "watt.json"))
}

// runReload measures one round of the reload scenario: one record per
// operation.
func (b *bench) runReload(ctx context.Context, t target, round int) []runRecord {
	recs := make([]runRecord, len(reloadOps))
	for i, op := range reloadOps {
		recs[i] = runRecord{Target: t.name, Scenario: op, Round: round}
	}
	failAll := func(err error, ps ...*proc) []runRecord {
		for i := range recs {
			if recs[i].Error == "" && recs[i].Load == nil {
				recs[i].fail(ctx, err, ps...)
			}
		}
		return recs
	}
	hello := t.dir
	dir, err := os.MkdirTemp("", "wattbench-reload-")
	if err != nil {
		return failAll(err)
	}
	defer os.RemoveAll(dir)
	if err := reloadProject(hello, dir, fmt.Sprintf("r%d-0", round)); err != nil {
		return failAll(err)
	}
	port, err := freePort()
	if err != nil {
		return failAll(err)
	}
	wt := t
	wt.dir = dir
	wt.argv = []string{t.argv[0], "start", dir}
	p, err := b.start(ctx, wt, port, nil, fmt.Sprintf("wattd-reload-r%d.log", round))
	if err != nil {
		return failAll(err)
	}
	defer p.stop()
	for i := range recs {
		recs[i].Port, recs[i].Log = port, p.logPath
	}
	d, err := waitFirst200(ctx, []*proc{p}, loopback(port), b.startTimeout)
	if err != nil {
		return failAll(err, p)
	}
	ctl := func(args ...string) error {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(cctx, t.argv[0], append([]string{"ctl"}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(append([]string(nil), b.env...), t.env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("wattd ctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	// The first 200 may come from one worker while the other still starts:
	// connections hashed to its socket would wait for it, and the window
	// would measure the start, not the operation.
	if err := waitAllReady(ctx, b.startTimeout, func() ([]byte, error) {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(cctx, t.argv[0], "ctl", "ps", "--json")
		cmd.Dir = dir
		cmd.Env = append(append([]string(nil), b.env...), t.env...)
		return cmd.Output()
	}); err != nil {
		return failAll(err, p)
	}
	ops := map[string]func() error{
		"reload": func() error {
			if err := reloadProject(hello, dir, fmt.Sprintf("r%d-1", round)); err != nil {
				return err
			}
			return ctl("reload")
		},
		"scale-up":   func() error { return ctl("scale", "hello", "4") },
		"scale-down": func() error { return ctl("scale", "hello", "1") },
	}
	opts := loadOpts{addr: loopback(port), conns: b.conns, reqTimeout: b.reqTimeout, dialTimeout: b.reqTimeout, duration: time.Hour}
	for i, op := range reloadOps {
		recs[i].FirstOKMs = ms(d)
		lctx, stopLoad := context.WithCancel(ctx)
		statsCh := make(chan *loadStats, 1)
		go func() { statsCh <- runLoad(lctx, opts) }()
		sleepCtx(ctx, reloadSettle)
		opErr := ops[op]()
		sleepCtx(ctx, reloadSettle)
		stopLoad()
		stats := <-statsCh
		if opErr != nil {
			recs[i].fail(ctx, opErr, p)
			continue
		}
		if ctx.Err() != nil {
			recs[i].fail(ctx, ctx.Err())
			continue
		}
		recs[i].Load = summarizeLoad(stats, b.conns)
	}
	st := p.stop()
	for i := range recs {
		recs[i].fillStop(st)
	}
	return recs
}

// waitAllReady polls ps (the output of `wattd ctl ps --json`) until every
// worker of every application is ready.
func waitAllReady(ctx context.Context, limit time.Duration, ps func() ([]byte, error)) error {
	deadline := time.Now().Add(limit)
	last := "no answer"
	for {
		out, err := ps()
		if err == nil {
			var apps []struct {
				ID      string `json:"id"`
				Workers []struct {
					State string `json:"state"`
				} `json:"workers"`
			}
			if err := json.Unmarshal(out, &apps); err == nil {
				ready := len(apps) > 0
				for _, a := range apps {
					for i, w := range a.Workers {
						if w.State != "ready" {
							ready = false
							last = fmt.Sprintf("app %s worker %d %s", a.ID, i, w.State)
						}
					}
				}
				if ready {
					return nil
				}
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not every worker ready within %s (%s)", limit, last)
		}
		sleepCtx(ctx, 50*time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// zeroFailures is the check of the reload rows: wattd alone, goal 0.
func zeroFailures(w, _, _ *float64) (bool, bool) {
	if w == nil {
		return false, false
	}
	return *w == 0, true
}

// reloadMetrics are the summary rows of the reload scenario.
func reloadMetrics() []metric {
	var out []metric
	for _, op := range reloadOps {
		what := map[string]string{"reload": "ctl reload (app rolled)", "scale-up": "ctl scale 2 -> 4", "scale-down": "ctl scale 4 -> 1"}[op]
		out = append(out,
			metric{scenario: op, name: op + ": failed requests during " + what + " (sum)", unit: "", prec: 0, fold: foldSum,
				value: loadVal(func(l *loadSummary) float64 { return float64(l.Failed + l.Refused + l.DialErr) }),
				goal:  "0", check: zeroFailures},
			metric{scenario: op, name: op + ": requests served meanwhile (sum)", unit: "", prec: 0, fold: foldSum,
				value: loadVal(func(l *loadSummary) float64 { return float64(l.Requests) })},
			metric{scenario: op, name: op + ": p99 latency", unit: "ms", prec: 2,
				value: loadVal(func(l *loadSummary) float64 { return l.P99Ms })},
		)
	}
	return out
}

// The reload rows go before the all-runs rows, which close the table.
func init() {
	i := len(metrics)
	for i > 0 && metrics[i-1].scenario == "" {
		i--
	}
	metrics = append(metrics[:i:i], append(reloadMetrics(), metrics[i:]...)...)
}
