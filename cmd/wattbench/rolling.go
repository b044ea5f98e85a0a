package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The rolling scenario: the hello app's workers under the closed-loop
// keep-alive load while `wattd ctl restart hello` replaces them one at a
// time, once per round, for wattd as it is and with one standby worker. The
// goal is that no request fails and no connection is refused; the time the
// restart took is reported beside it.

// helloApp is the id of the hello fixture's application.
const helloApp = "hello"

func (b *bench) runRolling(ctx context.Context, t target, round int) runRecord {
	rec := runRecord{Target: t.name, Scenario: scRolling, Round: round}
	t, err := b.prepare(t)
	if err != nil {
		rec.fail(ctx, err)
		return rec
	}
	p, err := b.startServing(ctx, &rec, t, fmt.Sprintf("%s-rolling-r%d.log", t.name, round))
	if p == nil {
		rec.fail(ctx, err)
		return rec
	}
	port := rec.Port
	if err == nil {
		err = b.waitReady(ctx, t)
	}
	if err != nil {
		rec.fillStop(p.stop())
		rec.fail(ctx, err, p)
		return rec
	}

	opts := loadOpts{addr: loopback(port), conns: b.conns, reqTimeout: b.reqTimeout, dialTimeout: b.reqTimeout, duration: time.Hour}
	lctx, stopLoad := context.WithCancel(ctx)
	statsCh := make(chan *loadStats, 1)
	go func() { statsCh <- runLoad(lctx, opts) }()
	sleepCtx(ctx, reloadSettle)
	t0 := time.Now()
	_, opErr := b.ctl(ctx, t, "restart", helloApp)
	rec.OpMs = ms(time.Since(t0))
	sleepCtx(ctx, reloadSettle)
	stopLoad()
	stats := <-statsCh

	select {
	case <-p.exited:
		opErr = errors.Join(opErr, fmt.Errorf("wattd exited during the restart (%s)", exitString(p)))
	default:
	}
	if opErr == nil {
		opErr = ctx.Err()
	}
	if opErr != nil {
		rec.fillStop(p.stop())
		rec.fail(ctx, opErr, p)
		return rec
	}
	rec.Load = summarizeLoad(stats, b.conns)
	rec.fillStop(p.stop())
	return rec
}

// ctl runs `wattd ctl ARGS` against the wattd target t started, named by
// its runtime name, and returns what it printed on stdout.
// startServing starts the wattd target t on a free port, in rec's name,
// and waits for its first 200 and checks that it took its standby key. A
// nil proc means it did not start; with a proc and an error, it runs but
// is unfit, and the caller stops it.
func (b *bench) startServing(ctx context.Context, rec *runRecord, t target, logName string) (*proc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	rec.Port = port
	p, err := b.start(ctx, t, port, nil, logName)
	if err != nil {
		return nil, err
	}
	rec.Log = p.logPath
	d, err := waitFirst200(ctx, []*proc{p}, loopback(port), b.startTimeout)
	if err == nil {
		rec.FirstOKMs = ms(d)
		err = standbyHonoured(p)
	}
	return p, err
}

func (b *bench) ctl(ctx context.Context, t target, args ...string) ([]byte, error) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	argv := append([]string{"ctl"}, args...)
	if i := slices.Index(t.argv, "--name"); i > 0 && i+1 < len(t.argv) && len(args) > 0 {
		// After the subcommand, which takes --name as its own option.
		argv = slices.Concat([]string{"ctl", args[0], "--name", t.argv[i+1]}, args[1:])
	}
	cmd := exec.CommandContext(cctx, t.argv[0], argv...)
	cmd.Dir = t.dir
	cmd.Env = append(append([]string(nil), b.env...), t.env...)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		msg := ""
		if errors.As(err, &ee) {
			msg = ": " + strings.TrimSpace(string(ee.Stderr))
		}
		return out, fmt.Errorf("wattd ctl %s: %w%s", strings.Join(args, " "), err, msg)
	}
	return out, nil
}

// waitReady waits until every worker of the wattd target t is ready: the
// first 200 may come from one worker while another still starts, and a
// measurement begun then would measure the start.
func (b *bench) waitReady(ctx context.Context, t target) error {
	return waitAllReady(ctx, b.startTimeout, func() ([]byte, error) {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return b.ctl(cctx, t, "ps", "--json")
	})
}

// wattdStart is the command line that starts wattd on the project in dir,
// under a runtime name of the bench's own: wattd refuses a second runtime
// of the same name, and the default, the directory's name ("hello"), may
// well be taken by another wattd on the machine.
func wattdStart(wattd, dir string) []string {
	return []string{wattd, "start", "--name", fmt.Sprintf("wattbench-%d-%s", os.Getpid(), filepath.Base(dir)), dir}
}
