package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The metrics scenario measures what the runtime's metrics cost a Node
// app: the throughput load on the hello fixture under wattd with metrics
// off ("wattd") and on ("wattd+metrics": the fixture's watt.json plus a
// metrics server on loopback, scraped every second during the run, which
// is harsher than any Prometheus set-up). The two alternate within each
// round and their order flips between rounds; the verdict is on the
// median of the per-round ratios on/off, whose spread is printed beside it.

const (
	metricsScenario = "metrics"
	metricsOnTarget = "wattd+metrics"
	// metricsGoal is the largest overhead the metrics may cost.
	metricsGoal = 0.03
	scrapeEvery = time.Second
)

// runMetrics runs one half of a metrics round: hello under wattd with
// metrics on or off.
func (b *bench) runMetrics(ctx context.Context, wattd target, on bool, round int, log io.Writer) runRecord {
	t := wattd
	if !on {
		rec := b.runLoadScenario(ctx, t, round, false)
		rec.Scenario = metricsScenario
		return rec
	}
	rec := runRecord{Target: metricsOnTarget, Scenario: metricsScenario, Round: round}
	mport, err := freePort()
	if err != nil {
		rec.fail(ctx, err)
		return rec
	}
	dir, err := metricsProject(b.logDir, wattd.dir, mport, round)
	if err != nil {
		rec.fail(ctx, err)
		return rec
	}
	t.name, t.dir, t.argv = metricsOnTarget, dir, []string{wattd.argv[0], "start", dir}
	sctx, stop := context.WithCancel(ctx)
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() { scrapeLoop(sctx, fmt.Sprintf("http://127.0.0.1:%d/metrics", mport), &ok, &failed) })
	rec = b.runLoadScenario(ctx, t, round, false)
	stop()
	wg.Wait()
	rec.Scenario = metricsScenario
	fmt.Fprintf(log, "  %s scraped /metrics %d times during the run (%d failed, mostly before the server listened)\n",
		metricsOnTarget, ok.Load(), failed.Load())
	return rec
}

// metricsProject writes a copy of the fixture's watt.json, in a directory
// of the run's logs, that turns metrics on at 127.0.0.1:port and points at
// the fixture's applications.
func metricsProject(logDir, fixture string, port, round int) (string, error) {
	raw, err := os.ReadFile(filepath.Join(fixture, "watt.json"))
	if err != nil {
		return "", err
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return "", fmt.Errorf("%s/watt.json: %w", fixture, err)
	}
	apps, _ := cfg["applications"].([]any)
	for _, a := range apps {
		if m, ok := a.(map[string]any); ok {
			if p, ok := m["path"].(string); ok && !filepath.IsAbs(p) {
				m["path"] = filepath.Join(fixture, p)
			}
		}
	}
	cfg["metrics"] = map[string]any{"hostname": "127.0.0.1", "port": port}
	dir := filepath.Join(logDir, fmt.Sprintf("metrics-on-r%d", round))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, "watt.json"), out, 0o644)
}

// scrapeLoop GETs url every scrapeEvery until ctx ends, counting answers.
func scrapeLoop(ctx context.Context, url string, ok, failed *atomic.Int64) {
	c := &http.Client{Timeout: 5 * time.Second}
	tick := time.NewTicker(scrapeEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := c.Do(req)
		if err != nil {
			failed.Add(1)
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			ok.Add(1)
		} else {
			failed.Add(1)
		}
	}
}

// metricsRatios pairs the metrics scenario's runs by round and returns
// each round's requests/s with metrics on divided by that with them off.
func metricsRatios(records []runRecord) (rounds []int, off, on, ratios []float64) {
	byRound := map[int][2]float64{}
	for _, r := range records {
		if r.Scenario != metricsScenario || r.Error != "" || r.Load == nil {
			continue
		}
		v := byRound[r.Round]
		if r.Target == metricsOnTarget {
			v[1] = r.Load.RPS
		} else {
			v[0] = r.Load.RPS
		}
		byRound[r.Round] = v
	}
	for _, round := range slices.Sorted(maps.Keys(byRound)) {
		v := byRound[round]
		if v[0] > 0 && v[1] > 0 {
			rounds, off, on, ratios = append(rounds, round), append(off, v[0]), append(on, v[1]), append(ratios, v[1]/v[0])
		}
	}
	return rounds, off, on, ratios
}

// printMetricsOverhead prints the metrics scenario's rounds and verdict.
func printMetricsOverhead(w io.Writer, records []runRecord) {
	rounds, off, on, ratios := metricsRatios(records)
	if len(ratios) == 0 {
		return
	}
	fmt.Fprintf(w, "\nmetrics: hello requests/s under wattd with metrics on (scraped every %s) and off, alternating\n", scrapeEvery)
	for i, r := range rounds {
		fmt.Fprintf(w, "  round %d: off %.0f, on %.0f, on/off %.3f\n", r, off[i], on[i], ratios[i])
	}
	s := slices.Sorted(slices.Values(ratios))
	med := median(s)
	verdict := "PASS"
	if 1-med > metricsGoal {
		verdict = "MISS"
	}
	fmt.Fprintf(w, "  on/off median %.3f (min %.3f, max %.3f over %d rounds): overhead %.1f%%, goal <= %.0f%%: %s\n",
		med, s[0], s[len(s)-1], len(s), 100*(1-med), 100*metricsGoal, verdict)
}
