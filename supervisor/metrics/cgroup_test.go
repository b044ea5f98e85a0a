package metrics

import (
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/wattd/wattd/supervisor"
)

func TestOwnFamilies(t *testing.T) {
	u64 := func(n uint64) *uint64 { return &n }
	f64 := func(v float64) *float64 { return &v }
	src := snapshot{apps: []supervisor.AppStatus{
		{ID: "api", Workers: []supervisor.WorkerStatus{
			{Index: 0, PID: 10, State: "ready", Starts: 2, StartTime: 1.5,
				// 0.3 s and 1.2 s: in the 0.5 and 2 s buckets.
				StartsWithin: []uint64{0, 0, 1, 1, 2, 2, 2, 2, 2, 2},
				// Replaced twice, in 0.08 s and 0.27 s.
				Replacements: 2, ReplacementTime: 0.35,
				ReplacementsWithin: []uint64{0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2},
				CgroupOOMKills:     u64(3), LogLinesDropped: 7, LogLinesTruncated: 2,
				CPUThrottling: &supervisor.CPUThrottling{Periods: 100, ThrottledPeriods: 40, ThrottledSeconds: 3},
				Pressure: &supervisor.Pressure{
					CPU:    &supervisor.Stall{SomeSeconds: 0.7, FullSeconds: f64(0.3)},
					Memory: &supervisor.Stall{SomeSeconds: 0.01},
				}},
			{Index: 1, PID: 11, State: "ready", Starts: 1, StartTime: 0.2,
				StartsWithin: []uint64{0, 1, 1, 1, 1, 1, 1, 1, 1, 1}, CgroupOOMKills: u64(0)},
		}},
		// Without cgroups: no cgroup series at all, the log counts still.
		{ID: "plain", Workers: []supervisor.WorkerStatus{{Index: 0, PID: 12, State: "ready"}}},
	}}
	fams := gather(t, src)

	h := map[string]*dto.Histogram{}
	for _, m := range fams["wattd_worker_start_duration_seconds"].GetMetric() {
		if len(m.GetLabel()) != 2 || m.GetLabel()[0].GetName() != appLabel {
			t.Errorf("start duration labels %v, want applicationId (and env)", m.GetLabel())
		}
		h[m.GetLabel()[0].GetValue()] = m.GetHistogram()
	}
	if got := h["api"]; got.GetSampleCount() != 3 || got.GetSampleSum() != 1.7 {
		t.Errorf("api start duration: count %d sum %v, want 3 and 1.7", got.GetSampleCount(), got.GetSampleSum())
	}
	want := map[float64]uint64{0.1: 0, 0.25: 1, 0.5: 2, 1: 2, 2: 3, 120: 3}
	for _, b := range h["api"].GetBucket() {
		if n, ok := want[b.GetUpperBound()]; ok && b.GetCumulativeCount() != n {
			t.Errorf("api bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), n)
		}
	}
	if len(h["api"].GetBucket()) != len(supervisor.StartBuckets) {
		t.Errorf("%d buckets, want %d", len(h["api"].GetBucket()), len(supervisor.StartBuckets))
	}
	if got := h["plain"]; got == nil || got.GetSampleCount() != 0 {
		t.Errorf("plain start duration = %v, want an empty histogram", got)
	}

	r := map[string]*dto.Histogram{}
	for _, m := range fams["wattd_worker_replacement_seconds"].GetMetric() {
		r[m.GetLabel()[0].GetValue()] = m.GetHistogram()
	}
	if got := r["api"]; got.GetSampleCount() != 2 || got.GetSampleSum() != 0.35 || len(got.GetBucket()) != len(supervisor.ReplacementBuckets) {
		t.Errorf("api replacement: count %d sum %v, %d buckets; want 2, 0.35, %d", got.GetSampleCount(), got.GetSampleSum(), len(got.GetBucket()), len(supervisor.ReplacementBuckets))
	}
	want = map[float64]uint64{0.05: 0, 0.1: 1, 0.25: 1, 0.5: 2, 30: 2}
	for _, b := range r["api"].GetBucket() {
		if n, ok := want[b.GetUpperBound()]; ok && b.GetCumulativeCount() != n {
			t.Errorf("api replacement bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), n)
		}
	}
	if got := r["plain"]; got == nil || got.GetSampleCount() != 0 {
		t.Errorf("plain replacement = %v, want an empty histogram", got)
	}

	for name, want := range map[string]map[string]float64{
		"wattd_worker_cgroup_oom_kills_total":                {"applicationId=api,workerId=0,": 3, "applicationId=api,workerId=1,": 0},
		"wattd_worker_cpu_periods_total":                     {"applicationId=api,workerId=0,": 100},
		"wattd_worker_cpu_throttled_periods_total":           {"applicationId=api,workerId=0,": 40},
		"wattd_worker_cpu_throttled_seconds_total":           {"applicationId=api,workerId=0,": 3},
		"wattd_worker_pressure_cpu_waiting_seconds_total":    {"applicationId=api,workerId=0,": 0.7},
		"wattd_worker_pressure_cpu_stalled_seconds_total":    {"applicationId=api,workerId=0,": 0.3},
		"wattd_worker_pressure_memory_waiting_seconds_total": {"applicationId=api,workerId=0,": 0.01},
		"wattd_worker_log_lines_dropped_total": {
			"applicationId=api,workerId=0,": 7, "applicationId=api,workerId=1,": 0, "applicationId=plain,workerId=0,": 0},
		"wattd_worker_log_lines_truncated_total": {
			"applicationId=api,workerId=0,": 2, "applicationId=api,workerId=1,": 0, "applicationId=plain,workerId=0,": 0},
	} {
		f := fams[name]
		if f.GetType() != dto.MetricType_COUNTER {
			t.Errorf("%s is a %v, want a counter", name, f.GetType())
		}
		got := series(f)
		if len(got) != len(want) {
			t.Errorf("%s = %v, want %v", name, got, want)
			continue
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s{%s} = %v, want %v", name, k, got[k], v)
			}
		}
	}
	// What the kernel did not report is absent, not 0.
	for _, name := range []string{"wattd_worker_pressure_memory_stalled_seconds_total", "wattd_worker_pressure_io_waiting_seconds_total"} {
		if f, ok := fams[name]; ok {
			t.Errorf("%s present: %v", name, series(f))
		}
	}
}
