package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/wattd/wattd/supervisor/admin"
)

// byLabels maps a family's series to the values of the named labels
// they have, joined with "/" ("web/0" for applicationId and workerId).
func byLabels(f *dto.MetricFamily, names ...string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range f.GetMetric() {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		var key []string
		for _, n := range names {
			if v, ok := l[n]; ok {
				key = append(key, v)
			}
		}
		out[strings.Join(key, "/")] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
	}
	return out
}

// byWorker is byLabels by application and worker.
func byWorker(f *dto.MetricFamily) map[string]float64 {
	return byLabels(f, "applicationId", "workerId")
}

// TestMetricsCgroupFigures runs workers under memory and CPU limits, so
// that each has its cgroups, with one that allocates without bound and one
// that writes a line over the log's limit, and checks the series read
// from the cgroups and wattd's own: OOM kills counted by the kernel (and
// never going down while the killed workers' groups go), CPU bandwidth
// figures, no PSI on v1, start durations, lines cut; and the same figures
// in `wattd ctl metrics`.
func TestMetricsCgroupFigures(t *testing.T) {
	integration(t)
	cgroupV1(t)
	port, mport := freePort(t), freePort(t)
	dir := project(t, map[string]any{
		"entrypoint": "web",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"restart":    map[string]any{"initialDelay": 200, "maxDelay": 1000, "maxRestarts": 0},
		"metrics":    map[string]any{"hostname": "127.0.0.1", "port": mport},
		"applications": []any{
			map[string]any{"id": "web", "path": fixture("apps/plain"), "workers": 2,
				"resources": map[string]any{"memory": "256MiB", "cpus": 1}},
			map[string]any{"id": "hog", "path": fixture("faults/memory-hog"), "resources": map[string]any{"memory": "96MiB"}},
			map[string]any{"id": "long", "path": fixture("faults/long-line"), "resources": map[string]any{"memory": "128MiB"}},
		},
	})
	d := startWattd(t, dir, port, startOpts{})
	base := fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)
	// hog can be killed twice before web's workers are up on a busy
	// machine; the start figures below are web's.
	d.waitReady("web", 60*time.Second)

	var fams map[string]*dto.MetricFamily
	var lastOOM float64
	waitFor(t, 90*time.Second, "hog to be OOM-killed twice, counted in its cgroup series", func() bool {
		var err error
		if fams, err = scrape(base, "", ""); err != nil {
			t.Logf("scrape: %v", err)
			return false
		}
		oom, ok := byWorker(fams["wattd_worker_cgroup_oom_kills_total"])["hog/0"]
		if ok && oom < lastOOM {
			t.Errorf("wattd_worker_cgroup_oom_kills_total{hog/0} went down: %v after %v", oom, lastOOM)
		}
		lastOOM = oom
		ended := byWorker(fams["wattd_worker_oom_kills_total"])["hog/0"]
		return oom >= 2 && ended >= 2 && byWorker(fams["wattd_worker_memory_bytes"])["web/1"] > 0
	})
	// Every worker has its cgroups: the kernel's count exists for each slot.
	if got := byWorker(fams["wattd_worker_cgroup_oom_kills_total"]); len(got) != 4 || got["web/0"] != 0 || got["web/1"] != 0 || got["long/0"] != 0 {
		t.Errorf("wattd_worker_cgroup_oom_kills_total = %v, want hog/0 >= 2 and 0 for web/0, web/1, long/0", got)
	}
	restarts := byLabels(fams["wattd_application_restarts_total"], "applicationId", "reason")
	if restarts["hog/oom"] < 1 || restarts["web/oom"] != 0 {
		t.Errorf("restarts by reason = %v, want hog/oom at least 1, web/oom 0", restarts)
	}

	// CPU bandwidth figures for the workers with a CPU limit only: on v1
	// a worker without one has no cpu cgroup.
	for _, name := range []string{"wattd_worker_cpu_periods_total", "wattd_worker_cpu_throttled_periods_total", "wattd_worker_cpu_throttled_seconds_total"} {
		got := byWorker(fams[name])
		if _, ok := got["web/0"]; !ok || len(got) != 2 {
			t.Errorf("%s = %v, want web/0 and web/1 only", name, got)
		}
	}
	if got := byWorker(fams["wattd_worker_cpu_periods_total"]); got["web/0"] <= 0 {
		t.Errorf("wattd_worker_cpu_periods_total = %v: a started Node.js worker ran in no period", got)
	}
	if got := byWorker(fams["wattd_worker_memory_limit_bytes"]); got["web/0"] != 256<<20 || got["long/0"] != 128<<20 {
		t.Errorf("wattd_worker_memory_limit_bytes = %v", got)
	}
	// v1 has no pressure stall information.
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); os.IsNotExist(err) {
		for name := range fams {
			if strings.HasPrefix(name, "wattd_worker_pressure_") {
				t.Errorf("%s exported on cgroup v1: %v", name, byWorker(fams[name]))
			}
		}
	}

	// Lines over the limit are counted; nothing was dropped.
	if got := byWorker(fams["wattd_worker_log_lines_truncated_total"]); got["long/0"] != 1 || got["web/0"] != 0 {
		t.Errorf("wattd_worker_log_lines_truncated_total = %v, want long/0 1", got)
	}
	if got := byWorker(fams["wattd_worker_log_lines_dropped_total"]); len(got) != 4 {
		t.Errorf("wattd_worker_log_lines_dropped_total = %v, want a series per slot", got)
	}

	// One start histogram per application, with both web workers in it.
	for _, m := range fams["wattd_worker_start_duration_seconds"].GetMetric() {
		if len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != "web" {
			continue
		}
		h := m.GetHistogram()
		last := h.GetBucket()[len(h.GetBucket())-1].GetCumulativeCount()
		if h.GetSampleCount() != 2 || last != 2 || h.GetSampleSum() <= 0 {
			t.Errorf("web start duration: count %d, in the last bucket %d, sum %v; want 2 starts", h.GetSampleCount(), last, h.GetSampleSum())
		}
	}

	out, err := d.ctl("metrics", "--json")
	if err != nil {
		t.Fatalf("ctl metrics --json: %v\n%s", err, out)
	}
	var rows []admin.WorkerFigures
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("ctl metrics --json: %v\n%s", err, out)
	}
	for _, r := range rows {
		switch {
		case r.CgroupOOMKills == nil:
			t.Errorf("ctl metrics %s/%d: no cgroup OOM count", r.App, r.Worker)
		case r.App == "hog" && *r.CgroupOOMKills < 2:
			t.Errorf("ctl metrics hog: cgroup OOM kills %d, want at least 2", *r.CgroupOOMKills)
		case r.App == "web" && (r.CPUThrottling == nil || r.CPUThrottling.Periods == 0):
			t.Errorf("ctl metrics web/%d: throttling %+v", r.Worker, r.CPUThrottling)
		case r.App == "long" && r.LogLinesTruncated != 1:
			t.Errorf("ctl metrics long: %d lines truncated, want 1", r.LogLinesTruncated)
		}
	}
	table, err := d.ctl("metrics", "web")
	if err != nil || !strings.Contains(table, "CG-OOM") || !strings.Contains(table, "THROTTLED") {
		t.Errorf("ctl metrics web: %v\n%s", err, table)
	}
	t.Logf("ctl metrics web:\n%s", table)
}

// gate passes writes through to nowhere while open and holds them while
// shut: wattd's output as a reader that stalls.
type gate struct {
	mu   sync.Mutex
	open *sync.Cond
	shut bool
}

func newGate() *gate {
	g := &gate{}
	g.open = sync.NewCond(&g.mu)
	return g
}

func (g *gate) Write(p []byte) (int, error) {
	g.mu.Lock()
	for g.shut {
		g.open.Wait()
	}
	g.mu.Unlock()
	return len(p), nil
}

func (g *gate) set(shut bool) {
	g.mu.Lock()
	g.shut = shut
	g.mu.Unlock()
	g.open.Broadcast()
}

// TestMetricsCountDroppedLogLines: when wattd's output stalls (a reader
// that stopped reading), a worker flooding its output loses lines, in
// wattd's bounded output queue (wattd_log_lines_dropped_total) or, should
// the log fall behind the flood, in the bounded queue between the worker's
// pipe and the log (wattd_worker_log_lines_dropped_total), and the metrics
// count them while the worker keeps running and wattd keeps serving
// scrapes.
func TestMetricsCountDroppedLogLines(t *testing.T) {
	integration(t)
	port, mport := freePort(t), freePort(t)
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"metrics":      map[string]any{"hostname": "127.0.0.1", "port": mport},
		"applications": []any{map[string]any{"id": "flood", "path": fixture("faults/log-flood")}},
	})
	out := newGate()
	startWattd(t, dir, port, startOpts{out: out})
	// Registered after startWattd's, so it runs first: wattd must be
	// able to write again to stop.
	t.Cleanup(func() { out.set(false) })
	base := fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)
	var before float64
	waitFor(t, 30*time.Second, "the flooding worker to be ready", func() bool {
		fams, err := scrape(base, "", "")
		if err != nil {
			return false
		}
		w, ok := byWorker(fams["wattd_worker_log_lines_dropped_total"])["flood/0"]
		before = w + outputDropped(fams)
		return ok && byWorker(fams["wattd_worker_up"])["flood/0"] == 1
	})
	out.set(true)
	var dropped float64
	waitFor(t, 30*time.Second, "lines of the flood to be counted as dropped", func() bool {
		fams, err := scrape(base, "", "")
		if err != nil {
			t.Logf("scrape: %v", err)
			return false
		}
		dropped = byWorker(fams["wattd_worker_log_lines_dropped_total"])["flood/0"] + outputDropped(fams)
		// Either queue fills in well under a second of flood.
		return dropped > before+100 && byWorker(fams["wattd_worker_up"])["flood/0"] == 1
	})
	if code, body, err := get(fresh, fmt.Sprintf("http://127.0.0.1:%d/", port)); err != nil || code != 200 {
		t.Errorf("the flooding worker while its lines are dropped: %d %q %v", code, body, err)
	}
	t.Logf("%v lines dropped before wattd's output stalled, %v after", before, dropped)
}

// outputDropped is wattd_log_lines_dropped_total, the entries wattd's own
// output lost.
func outputDropped(fams map[string]*dto.MetricFamily) float64 {
	var n float64
	for _, m := range fams["wattd_log_lines_dropped_total"].GetMetric() {
		n += m.GetCounter().GetValue()
	}
	return n
}
