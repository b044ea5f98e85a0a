package main

// The promote scenario: how fast a promoted standby serves its first
// requests, with the standby's warm-up (the Node preload serves requests to
// itself while the standby waits) and without it (WATTD_STANDBY_WARMUP=0 in
// the app's environment). The hello app runs one worker and one standby,
// so that every connection reaches the slot being replaced. Each round, for
// each variant in turn: wattd starts; then, promoteKills times, once the
// standby has waited long enough to have warmed up, the worker is killed
// with SIGKILL and promoteConns connections are opened at once, each
// sending promoteRequests requests one after another. The first request of
// each connection waits for the promotion and meets the new worker's
// coldest code; the later ones show how long it stays slow.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// promoteVariants are the two runs of a round, as runRecord.Target.
var promoteVariants = []string{"warm", "cold"}

const (
	scPromote       = "promote"
	promoteKills    = 3
	promoteConns    = 25
	promoteRequests = 40
	// promoteWait is how long a standby is left alone before its worker is
	// killed: the preload begins its warm-up 1 s after the standby is
	// loaded and spends at most 0.5 s on it.
	promoteWait = 2500 * time.Millisecond
)

// promoteSummary is one run's latencies, over its kills.
type promoteSummary struct {
	Kills      int     `json:"kills"`
	FirstP50Ms float64 `json:"first_p50_ms"`
	FirstP90Ms float64 `json:"first_p90_ms"`
	FirstMaxMs float64 `json:"first_max_ms"`
	LaterP50Ms float64 `json:"later_p50_ms"`
	LaterP99Ms float64 `json:"later_p99_ms"`
	Failed     int     `json:"failed"`
}

func (b *bench) runPromote(ctx context.Context, wattd target, round int) []runRecord {
	var recs []runRecord
	for _, variant := range rotate(promoteVariants, round-1) {
		recs = append(recs, b.runPromoteVariant(ctx, wattd, variant, round))
		sleepCtx(ctx, 500*time.Millisecond)
	}
	return recs
}

func (b *bench) runPromoteVariant(ctx context.Context, wattd target, variant string, round int) runRecord {
	rec := runRecord{Target: variant, Scenario: scPromote, Round: round}
	dir := filepath.Join(b.logDir, "promote-"+variant)
	err := projectCopy(wattd.dir, dir, func(cfg, app map[string]any) {
		// At debug level wattd logs each standby's warm-up, which the
		// run checks for (warmUps).
		cfg["logger"] = map[string]any{"level": "debug"}
		app["workers"] = 1
		app["standby"] = 1
		if variant == "cold" {
			env, _ := app["env"].(map[string]any)
			if env == nil {
				env = map[string]any{}
			}
			env["WATTD_STANDBY_WARMUP"] = "0"
			app["env"] = env
		}
	})
	if err != nil {
		rec.fail(ctx, err)
		return rec
	}
	t := wattd
	t.name, t.dir, t.argv, t.standby = variant, dir, wattdStart(wattd.argv[0], dir), 1
	p, err := b.startServing(ctx, &rec, t, fmt.Sprintf("promote-%s-r%d.log", variant, round))
	if p == nil {
		rec.fail(ctx, err)
		return rec
	}
	port := rec.Port
	var first, later []float64
	failed := 0
	for k := 0; err == nil && k < promoteKills; k++ {
		if _, err = b.waitStandby(ctx, t); err != nil {
			break
		}
		sleepCtx(ctx, promoteWait)
		// The worker's pid again, just before the kill: never a pid read
		// seconds ago, which could have been reused.
		var pid int
		if pid, err = b.waitStandby(ctx, t); err != nil {
			break
		}
		if err = syscall.Kill(pid, syscall.SIGKILL); err != nil {
			err = fmt.Errorf("killing worker %d: %w", pid, err)
			break
		}
		f, l, n := promoteBurst(ctx, loopback(port), b.reqTimeout)
		first, later, failed = append(first, f...), append(later, l...), failed+n
		if err == nil {
			err = ctx.Err()
		}
	}
	rec.fillStop(p.stop())
	if err == nil {
		err = warmUps(p.logPath, variant)
	}
	if err != nil {
		rec.fail(ctx, err, p)
		return rec
	}
	if len(first) == 0 {
		rec.fail(ctx, fmt.Errorf("no request was answered after a promotion (%d failed)", failed), p)
		return rec
	}
	rec.Promote = &promoteSummary{
		Kills:      promoteKills,
		FirstP50Ms: quantile(first, 0.50),
		FirstP90Ms: quantile(first, 0.90),
		FirstMaxMs: quantile(first, 1),
		LaterP50Ms: quantile(later, 0.50),
		LaterP99Ms: quantile(later, 0.99),
		Failed:     failed,
	}
	return rec
}

// waitStandby waits until the app's one worker is ready and its standby
// can take the slot, and returns the worker's pid.
func (b *bench) waitStandby(ctx context.Context, t target) (int, error) {
	pid := 0
	last, err := pollPS(ctx, b.startTimeout, func() ([]byte, error) {
		return b.ctl(ctx, t, "ps", "--json")
	}, func(out []byte) (bool, string) {
		var apps []struct {
			Workers []struct {
				PID   int    `json:"pid"`
				State string `json:"state"`
			} `json:"workers"`
			Standbys []struct {
				State string `json:"state"`
			} `json:"standbys"`
		}
		if err := json.Unmarshal(out, &apps); err != nil || len(apps) != 1 {
			return false, ""
		}
		a := apps[0]
		if len(a.Workers) == 1 && a.Workers[0].State == "ready" && a.Workers[0].PID > 0 &&
			len(a.Standbys) == 1 && a.Standbys[0].State == "standby" {
			pid = a.Workers[0].PID
			return true, ""
		}
		return false, string(out)
	})
	if errors.Is(err, errPollTimeout) {
		return 0, fmt.Errorf("worker and standby not ready within %s: %s", b.startTimeout, last)
	}
	return pid, err
}

// promoteBurst opens promoteConns connections to addr at once, each
// sending promoteRequests keep-alive requests in turn; it returns the
// latencies in ms of each connection's first request and of the others,
// and how many connections failed before their last request.
func promoteBurst(ctx context.Context, addr string, timeout time.Duration) (first, later []float64, failed int) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range promoteConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, l, err := promoteConn(ctx, addr, timeout)
			mu.Lock()
			defer mu.Unlock()
			first, later = append(first, f...), append(later, l...)
			if err != nil {
				failed++
			}
		}()
	}
	wg.Wait()
	return first, later, failed
}

func promoteConn(ctx context.Context, addr string, timeout time.Duration) (first, later []float64, err error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	// The load generator's own request and reader (httpc.go), which
	// allocate next to nothing beside the server they measure.
	req := request(addr, false)
	br := bufio.NewReaderSize(conn, readerBufferLen)
	for i := range promoteRequests {
		start := time.Now()
		_ = conn.SetDeadline(start.Add(timeout))
		if _, err := conn.Write(req); err != nil {
			return first, later, err
		}
		resp, err := readResponse(br)
		if err != nil {
			return first, later, err
		}
		if resp.status != 200 {
			return first, later, fmt.Errorf("status %d", resp.status)
		}
		if v := ms(time.Since(start)); i == 0 {
			first = append(first, v)
		} else {
			later = append(later, v)
		}
		if resp.close && i < promoteRequests-1 {
			return first, later, errors.New("the server closed the connection")
		}
	}
	return first, later, nil
}

// warmUps checks that the standbys of the warm variant warmed up before
// each promotion, and that those of the cold one never did: otherwise the
// two would be measuring the same thing under different names.
func warmUps(logPath, variant string) error {
	raw, err := os.ReadFile(logPath)
	if err != nil {
		return err
	}
	n := strings.Count(string(raw), `"msg":"standby warmed up"`)
	switch {
	case variant == "warm" && n < promoteKills:
		return fmt.Errorf("%d standby warm-ups logged for %d promotions: this wattd does not warm its standbys up", n, promoteKills)
	case variant == "cold" && n > 0:
		return fmt.Errorf("%d standby warm-ups logged although WATTD_STANDBY_WARMUP=0", n)
	}
	return nil
}
