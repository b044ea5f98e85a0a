package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"
)

// The metrics scenario measures what the runtime's metrics cost a Node
// app: the hello scenario's load on the hello fixture under wattd with metrics
// off ("wattd") and on ("wattd+metrics": the fixture's watt.json plus a
// metrics server on loopback, scraped every second while it takes load,
// which is harsher than any Prometheus set-up). The two run side by side
// and take the load in turns (pair.go), the first turn going to each in
// every other round; the verdict is on the median of the per-round ratios
// on/off, whose spread is printed beside it.

const (
	metricsScenario = "metrics"
	metricsOnTarget = "wattd+metrics"
	// metricsGoal is the largest overhead the metrics may cost.
	metricsGoal = 0.03
	scrapeEvery = time.Second
)

// runMetrics runs one round of the metrics scenario: hello under wattd
// with metrics off and on, paired (pair.go), side first taking the first
// slice.
func (b *bench) runMetrics(ctx context.Context, wattd target, round, first int, log io.Writer) []runRecord {
	off := &pairSide{rec: runRecord{Target: wattd.name, Scenario: metricsScenario, Round: round}, t: wattd}
	on := &pairSide{rec: runRecord{Target: metricsOnTarget, Scenario: metricsScenario, Round: round}}
	mport, err := freePort()
	if err == nil {
		var dir string
		dir, err = metricsProject(b.logDir, wattd.dir, mport, round)
		on.t = wattd
		on.t.name, on.t.dir, on.t.argv = metricsOnTarget, dir, wattdStart(wattd.argv[0], dir)
	}
	sides := []*pairSide{off, on}
	if err != nil {
		return failSides(ctx, sides, err)
	}
	var ok, failed atomic.Int64
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)
	on.during = func(ctx context.Context) { scrapeLoop(ctx, url, &ok, &failed) }
	b.measurePair(ctx, sides, first)
	fmt.Fprintf(log, "  %s scraped /metrics %d times while under load (%d failed)\n", metricsOnTarget, ok.Load(), failed.Load())
	if on.rec.Error == "" && ok.Load() == 0 {
		on.rec.Error = "no scrape of /metrics succeeded: metrics were not on"
	}
	return sideRecords(sides)
}

// metricsProject writes a copy of the fixture's watt.json, in a directory
// of the run's logs, that turns metrics on at 127.0.0.1:port and points at
// the fixture's applications.
func metricsProject(logDir, fixture string, port, round int) (string, error) {
	dir := filepath.Join(logDir, fmt.Sprintf("metrics-on-r%d", round))
	return dir, projectCopy(fixture, dir, func(cfg, _ map[string]any) {
		cfg["metrics"] = map[string]any{"hostname": "127.0.0.1", "port": port}
	})
}

// scrapeLoop GETs url at once and then every scrapeEvery until ctx ends,
// counting answers.
func scrapeLoop(ctx context.Context, url string, ok, failed *atomic.Int64) {
	c := &http.Client{Timeout: 5 * time.Second}
	tick := time.NewTicker(scrapeEvery)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := c.Do(req)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				failed.Add(1)
			}
		case resp.StatusCode == http.StatusOK:
			ok.Add(1)
		default:
			failed.Add(1)
		}
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// metricsRound is one round of the metrics scenario: requests/s and
// target CPU per request (µs) with metrics off and on.
type metricsRound struct {
	round             int
	offRPS, onRPS     float64
	offCPUus, onCPUus float64
}

// metricsRounds pairs the metrics scenario's runs by round.
func metricsRounds(records []runRecord) []metricsRound {
	byRound := map[int]*metricsRound{}
	for _, r := range records {
		if r.Scenario != metricsScenario || r.Error != "" || r.Load == nil || r.Load.RPS <= 0 {
			continue
		}
		m := byRound[r.Round]
		if m == nil {
			m = &metricsRound{round: r.Round}
			byRound[r.Round] = m
		}
		cpu := r.TargetCores / r.Load.RPS * 1e6
		if r.Target == metricsOnTarget {
			m.onRPS, m.onCPUus = r.Load.RPS, cpu
		} else {
			m.offRPS, m.offCPUus = r.Load.RPS, cpu
		}
	}
	var out []metricsRound
	for _, round := range slices.Sorted(maps.Keys(byRound)) {
		if m := byRound[round]; m.offRPS > 0 && m.onRPS > 0 {
			out = append(out, *m)
		}
	}
	return out
}

// printMetricsOverhead prints the metrics scenario's rounds and verdict.
// Requests/s decide; on a machine the load saturates they mostly say which
// run got more CPU, so the target's CPU per request is printed beside them.
func printMetricsOverhead(w io.Writer, records []runRecord) {
	rounds := metricsRounds(records)
	if len(rounds) == 0 {
		return
	}
	fmt.Fprintf(w, "\nmetrics: hello under wattd with metrics on (scraped every %s) and off, side by side, taking the load in turns (ABBA)\n", scrapeEvery)
	var ratios, cpuRatios []float64
	for _, m := range rounds {
		r := m.onRPS / m.offRPS
		ratios = append(ratios, r)
		line := fmt.Sprintf("  round %d: req/s off %.0f, on %.0f, on/off %.3f", m.round, m.offRPS, m.onRPS, r)
		if m.offCPUus > 0 && m.onCPUus > 0 {
			cpuRatios = append(cpuRatios, m.onCPUus/m.offCPUus)
			line += fmt.Sprintf("; target CPU per request off %.1f µs, on %.1f µs, on/off %.3f", m.offCPUus, m.onCPUus, m.onCPUus/m.offCPUus)
		}
		fmt.Fprintln(w, line)
	}
	slices.Sort(ratios)
	med := median(ratios)
	verdict := "PASS"
	if 1-med > metricsGoal {
		verdict = "MISS"
	}
	fmt.Fprintf(w, "  req/s on/off median %.3f (min %.3f, max %.3f over %d rounds): overhead %.1f%%, goal <= %.0f%%: %s\n",
		med, ratios[0], ratios[len(ratios)-1], len(ratios), 100*(1-med), 100*metricsGoal, verdict)
	if len(cpuRatios) > 0 {
		slices.Sort(cpuRatios)
		fmt.Fprintf(w, "  CPU per request on/off median %.3f (min %.3f, max %.3f)\n",
			median(cpuRatios), cpuRatios[0], cpuRatios[len(cpuRatios)-1])
	}
}
