package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
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

// reloadOps are the measured operations, in order: each record's target
// (its scenario is "reload").
var reloadOps = []string{"reload", "scale-up", "scale-down"}

// reloadSettle is the load run before and after each operation.
const reloadSettle = 500 * time.Millisecond

// reloadProject writes a copy of the hello fixture's watt.json into dir
// with the app's path made absolute and VERSION=version in its env.
func reloadProject(hello, dir, version string) error {
	return projectCopy(hello, dir, func(_, app map[string]any) {
		app["env"] = map[string]any{"VERSION": version}
	})
}

// runReload measures one round of the reload scenario: one record per
// operation.
func (b *bench) runReload(ctx context.Context, t target, round int) []runRecord {
	recs := make([]runRecord, len(reloadOps))
	for i, op := range reloadOps {
		recs[i] = runRecord{Target: op, Scenario: scReload, Round: round}
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
	wt.argv = wattdStart(t.argv[0], dir)
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
		_, err := b.ctl(ctx, wt, args...)
		return err
	}
	if err := b.waitReady(ctx, wt); err != nil {
		return failAll(err, p)
	}
	ops := map[string]func() error{
		"reload": func() error {
			if err := reloadProject(hello, dir, fmt.Sprintf("r%d-1", round)); err != nil {
				return err
			}
			return ctl("reload")
		},
		"scale-up":   func() error { return ctl("scale", helloApp, "4") },
		"scale-down": func() error { return ctl("scale", helloApp, "1") },
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
// worker of every application is ready (or a standby).
func waitAllReady(ctx context.Context, limit time.Duration, ps func() ([]byte, error)) error {
	last, err := pollPS(ctx, limit, ps, func(out []byte) (bool, string) {
		var apps []struct {
			ID      string `json:"id"`
			Workers []struct {
				State string `json:"state"`
			} `json:"workers"`
		}
		if err := json.Unmarshal(out, &apps); err != nil {
			return false, ""
		}
		ready, last := len(apps) > 0, ""
		for _, a := range apps {
			for i, w := range a.Workers {
				// A standby worker is as ready as it gets
				// until it is promoted.
				if w.State != "ready" && !strings.Contains(w.State, "standby") {
					ready = false
					last = fmt.Sprintf("app %s worker %d %s", a.ID, i, w.State)
				}
			}
		}
		return ready, last
	})
	if errors.Is(err, errPollTimeout) {
		return fmt.Errorf("not every worker ready within %s (%s)", limit, last)
	}
	return err
}

// errPollTimeout is pollPS's error when limit passed first.
var errPollTimeout = errors.New("timed out")

// pollPS calls ps (the output of `wattd ctl ps --json`) every 50 ms until
// done accepts its output, for at most limit. It returns what done or ps
// last said of the state that was not yet right ("no answer" before
// either spoke), with errPollTimeout after limit, or ctx's error.
func pollPS(ctx context.Context, limit time.Duration, ps func() ([]byte, error), done func(out []byte) (bool, string)) (string, error) {
	deadline := time.Now().Add(limit)
	last := "no answer"
	for {
		out, err := ps()
		if err == nil {
			ok, why := done(out)
			if ok {
				return "", nil
			}
			if why != "" {
				last = why
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return last, errPollTimeout
		}
		sleepCtx(ctx, 50*time.Millisecond)
		if ctx.Err() != nil {
			return last, ctx.Err()
		}
	}
}
