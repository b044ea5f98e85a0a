package main

import (
	"context"
	"fmt"
	"time"
)

// The rss scenario: how much memory wattd and node:cluster hold, their root
// process (wattd itself, the cluster primary) apart from their whole tree
// (root and workers). Each run starts the target, waits until every worker
// is up, lets it settle and reads the resident set sizes; runs the
// closed-loop load for the run's duration, sampling the peaks; lets it
// settle again and reads them once more. Memory that a load leaves behind
// (heaps grown, buffers kept) shows as the difference.

// rssSettle is the quiet time before each idle reading.
const rssSettle = 500 * time.Millisecond

// idleRSS is one rss run's readings at rest, in bytes.
type idleRSS struct {
	StartRoot uint64 `json:"start_root_bytes"`
	StartTree uint64 `json:"start_tree_bytes"`
	AfterRoot uint64 `json:"after_load_root_bytes"`
	AfterTree uint64 `json:"after_load_tree_bytes"`
	Procs     int    `json:"procs"`
	// AfterRootPrivate is the root's resident memory after the load less
	// the pages of files it maps (its own executable's above all), which
	// the kernel keeps in its page cache and may drop and read again.
	AfterRootPrivate uint64 `json:"after_load_root_private_bytes"`
}

func (b *bench) runRSS(ctx context.Context, t target, round int) runRecord {
	rec := runRecord{Target: t.name, Scenario: scRSS, Round: round}
	port, err := freePort()
	if err != nil {
		rec.fail(ctx, err)
		return rec
	}
	rec.Port = port
	p, err := b.start(ctx, t, port, nil, fmt.Sprintf("%s-rss-r%d.log", t.name, round))
	if err != nil {
		rec.fail(ctx, err)
		return rec
	}
	rec.Log = p.logPath
	failStop := func(err error) runRecord {
		rec.fillStop(p.stop())
		rec.fail(ctx, err, p)
		return rec
	}
	d, err := waitFirst200(ctx, []*proc{p}, loopback(port), b.startTimeout)
	if err != nil {
		return failStop(err)
	}
	rec.FirstOKMs = ms(d)
	if t.name == "cluster" {
		// A primary has no readiness to ask: count its workers.
		err = waitTree(ctx, p.pid, 1+b.workers, b.startTimeout)
	} else {
		err = b.waitReady(ctx, t)
	}
	if err != nil {
		return failStop(err)
	}
	sleepCtx(ctx, rssSettle)
	idle := &idleRSS{}
	idle.StartRoot, idle.StartTree, idle.Procs = treeRSS(p.pid)

	sampler := newTreeSampler(b.sampleEvery, p.pid)
	sampler.start()
	stats := runLoad(ctx, loadOpts{addr: loopback(port), conns: b.conns, duration: b.duration,
		reqTimeout: b.reqTimeout, dialTimeout: b.reqTimeout})
	sampler.finish()
	sleepCtx(ctx, rssSettle)
	idle.AfterRoot, idle.AfterTree, _ = treeRSS(p.pid)
	idle.AfterRootPrivate, _ = readPrivateRSS(p.pid)

	select {
	case <-p.exited:
		return failStop(fmt.Errorf("target exited during the run (%s)", exitString(p)))
	default:
	}
	if ctx.Err() != nil {
		return failStop(ctx.Err())
	}
	rec.Idle = idle
	rec.Load = summarizeLoad(stats, b.conns)
	sampler.mu.Lock()
	rec.MaxTreeRSS, rec.MaxRootRSS, rec.MaxProcs = sampler.maxTotal, sampler.maxRoot, sampler.maxProcs
	rec.RSSSamples = sampler.samples
	sampler.mu.Unlock()
	rec.fillStop(p.stop())
	return rec
}

// treeRSS reads the resident set size of root and of its whole live tree,
// and counts the processes in it.
func treeRSS(root int) (rootRSS, total uint64, procs int) {
	for _, st := range processTree(root) {
		if st.state == 'Z' {
			continue
		}
		rss, err := readRSS(st.id.pid)
		if err != nil {
			continue
		}
		if st.id.pid == root {
			rootRSS = rss
		}
		total += rss
		procs++
	}
	return rootRSS, total, procs
}

// waitTree waits until root's tree counts at least n live processes.
func waitTree(ctx context.Context, root, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		_, _, got := treeRSS(root)
		if got >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d processes up after %s", got, n, limit)
		}
		sleepCtx(ctx, 50*time.Millisecond)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}
