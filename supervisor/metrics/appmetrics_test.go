package metrics

import (
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor"
)

const appText = `# HELP jobs_total Jobs done.
# TYPE jobs_total counter
jobs_total{queue="a",applicationId="spoofed"} 3
jobs_total{queue="a",applicationId="spoofed"} 4
# HELP queue_depth Jobs waiting.
# TYPE queue_depth gauge
queue_depth 7 1700000000000
# HELP wattd_worker_up Not wattd's.
# TYPE wattd_worker_up gauge
wattd_worker_up 5
# HELP nodejs_gc_duration_seconds_count Clashes with a sample of wattd's histogram.
# TYPE nodejs_gc_duration_seconds_count gauge
nodejs_gc_duration_seconds_count 1
# HELP empty_total Labelled, nothing recorded yet.
# TYPE empty_total counter
`

// A second worker whose queue_depth is of another type.
const otherText = `# TYPE jobs_total counter
jobs_total{queue="b"} 1
# TYPE queue_depth counter
queue_depth 2
`

func TestAppMetricsMerge(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	src := snapshot{apps: []supervisor.AppStatus{
		{ID: "api", Workers: []supervisor.WorkerStatus{
			{Index: 0, PID: 1, State: "ready", AppMetrics: appText,
				GC: &ipc.Histogram{Bounds: []float64{1}, Series: []ipc.HistogramSeries{{Kind: "minor", Counts: []uint64{1, 0}, Sum: 0.5}}}},
			{Index: 1, PID: 1, State: "ready", AppMetrics: otherText},
		}},
		{ID: "web", Workers: []supervisor.WorkerStatus{{Index: 0, PID: 1, State: "ready", AppMetrics: "this is { not metrics"}}},
	}}
	reg := prometheus.NewPedanticRegistry()
	c := newCollector(src, appLabel, prometheus.Labels{"env": "t"})
	reg.MustRegister(c)
	g := gatherer{reg: reg, c: c, merger: newAppMerger(zap.New(core), appLabel, prometheus.Labels{"env": "t"}, c.names)}
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		if byName[f.GetName()] != nil {
			t.Errorf("family %s twice", f.GetName())
		}
		byName[f.GetName()] = f
	}

	// Both workers' jobs_total in one family, wattd's labels set (the
	// app's applicationId replaced), the repeated series dropped.
	jobs := byName["jobs_total"]
	var got []string
	for _, m := range jobs.GetMetric() {
		var l []string
		for _, p := range m.GetLabel() {
			l = append(l, p.GetName()+"="+p.GetValue())
		}
		got = append(got, strings.Join(l, ",")+" "+strings.TrimRight(strings.TrimRight(m.GetCounter().String(), " "), " "))
	}
	if len(jobs.GetMetric()) != 2 || jobs.GetHelp() != "Jobs done." {
		t.Fatalf("jobs_total = %v", got)
	}
	for i, want := range []string{"applicationId=api,env=t,queue=a,workerId=0", "applicationId=api,env=t,queue=b,workerId=1"} {
		if !strings.HasPrefix(got[i], want+" ") {
			t.Errorf("jobs_total series %d = %s, want labels %s", i, got[i], want)
		}
	}
	if v := jobs.GetMetric()[0].GetCounter().GetValue(); v != 3 {
		t.Errorf("jobs_total{queue=a} = %v, want the first of the repeated series, 3", v)
	}
	// The first worker's queue_depth stays, without its timestamp; the
	// second's, a counter, is left out.
	if q := byName["queue_depth"]; len(q.GetMetric()) != 1 || q.GetType() != dto.MetricType_GAUGE || q.GetMetric()[0].TimestampMs != nil {
		t.Errorf("queue_depth = %v", q)
	}
	// wattd's own names stay wattd's: its gauge, and a sample name of its
	// GC histogram.
	for _, m := range byName["wattd_worker_up"].GetMetric() {
		if m.GetGauge().GetValue() != 1 {
			t.Errorf("wattd_worker_up = %v, want wattd's 1", m)
		}
	}
	if byName["nodejs_gc_duration_seconds_count"] != nil || byName["nodejs_gc_duration_seconds"] == nil {
		t.Error("an app gauge named like a sample of wattd's GC histogram was merged")
	}
	if byName["empty_total"] != nil {
		t.Error("a family with no series was merged")
	}

	// One warning per worker at fault, however many scrapes see it.
	if _, err := g.Gather(); err != nil {
		t.Fatal(err)
	}
	warned := map[string]int{}
	for _, e := range logs.All() {
		warned[e.ContextMap()["app"].(string)+"/"+e.Message]++
	}
	for k, n := range warned {
		if n != 1 {
			t.Errorf("warned %d times: %s", n, k)
		}
	}
	for _, k := range []string{
		"web/the app's metrics do not parse; leaving them out",
		"api/an app metric has another type than most workers give it; leaving it out",
		"api/an app metric has the name of one wattd exports; leaving it out",
	} {
		if warned[k] == 0 {
			t.Errorf("no warning %q; got %v", k, warned)
		}
	}
}

// TestAppMetricsHostile: what one worker's app metrics cannot do to the
// endpoint. They cannot take a name wattd exports while wattd has no series
// of it (no request served yet), nor one under wattd's prefix; a name's
// type is the one most workers give it, not the first worker's; a text over
// maxAppText is left out; repeated buckets and quantiles are kept once.
func TestAppMetricsHostile(t *testing.T) {
	squat := `# TYPE http_request_all_duration_seconds gauge
http_request_all_duration_seconds 1
# TYPE wattd_made_up_total counter
wattd_made_up_total 12345
`
	gauge := "# TYPE jobs_total gauge\njobs_total 99\n"
	counter := "# TYPE jobs_total counter\njobs_total 1\n"
	dups := `# TYPE h histogram
h_bucket{le="1"} 1
h_bucket{le="1"} 1
h_bucket{le="+Inf"} 2
h_sum 3
h_count 2
# TYPE s summary
s{quantile="0.5"} 1
s{quantile="0.5"} 1
s_sum 1
s_count 1
`
	huge := "# TYPE big gauge\n" + strings.Repeat("big{n=\"x\"} 1\n", maxAppText/10)
	src := snapshot{apps: []supervisor.AppStatus{
		{ID: "a", Workers: []supervisor.WorkerStatus{
			{Index: 0, PID: 1, State: "ready", AppMetrics: squat},
			{Index: 1, PID: 1, State: "ready", AppMetrics: gauge}, // first to name jobs_total
		}},
		{ID: "b", Workers: []supervisor.WorkerStatus{
			{Index: 0, PID: 1, State: "ready", AppMetrics: counter},
			{Index: 1, PID: 1, State: "ready", AppMetrics: counter + dups},
			{Index: 2, PID: 1, State: "ready", AppMetrics: huge},
		}},
	}}
	core, logs := observer.New(zap.WarnLevel)
	reg := prometheus.NewPedanticRegistry()
	c := newCollector(src, appLabel, nil)
	reg.MustRegister(c)
	g := gatherer{reg: reg, c: c, merger: newAppMerger(zap.New(core), appLabel, nil, c.names)}
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	for _, n := range []string{"http_request_all_duration_seconds", "wattd_made_up_total", "big"} {
		if byName[n] != nil {
			t.Errorf("%s merged: %v", n, byName[n])
		}
	}
	if j := byName["jobs_total"]; j.GetType() != dto.MetricType_COUNTER || len(j.GetMetric()) != 2 {
		t.Errorf("jobs_total = %v, want the two workers' counters, not the first worker's gauge", j)
	}
	if h := byName["h"]; h == nil || len(h.GetMetric()[0].GetHistogram().GetBucket()) != 2 {
		t.Errorf("h = %v, want its repeated bucket once (and +Inf)", h)
	}
	if sm := byName["s"]; sm == nil || len(sm.GetMetric()[0].GetSummary().GetQuantile()) != 1 {
		t.Errorf("s = %v, want its repeated quantile once", sm)
	}
	var msgs []string
	for _, e := range logs.All() {
		msgs = append(msgs, e.Message)
	}
	for _, want := range []string{
		"an app metric has the name of one wattd exports; leaving it out",
		"an app metric has another type than most workers give it; leaving it out",
		"the app's metrics are over the size wattd takes; leaving them out",
	} {
		if !slices.Contains(msgs, want) {
			t.Errorf("no warning %q; got %q", want, msgs)
		}
	}
}

// TestApplicationLabelNamesEverySeries: with Watt's applicationLabel set,
// every series that names an application, wattd's own, the Node workers'
// and the apps' merged ones, names it with that label, and wattd sets
// applicationId on none.
func TestApplicationLabelNamesEverySeries(t *testing.T) {
	src := snapshot{apps: []supervisor.AppStatus{
		{ID: "api", Workers: []supervisor.WorkerStatus{
			{Index: 0, PID: 1, State: "ready", AppMetrics: appText, RestartsBy: map[string]int{"oom": 1}, Starts: 1, StartTime: 0.2,
				GC:       &ipc.Histogram{Bounds: []float64{1}, Series: []ipc.HistogramSeries{{Kind: "minor", Counts: []uint64{1, 0}, Sum: 0.5}}},
				Requests: &ipc.Histogram{Bounds: []float64{1}, Series: []ipc.HistogramSeries{{Method: "GET", StatusCode: 200, Counts: []uint64{2, 0}, Sum: 0.1}}},
				Lag:      &ipc.EventLoopLag{Seconds: 0.001}},
		}},
	}}
	reg := prometheus.NewPedanticRegistry()
	c := newCollector(src, "serviceId", prometheus.Labels{"env": "t"})
	reg.MustRegister(c)
	g := gatherer{reg: reg, c: c, merger: newAppMerger(zap.NewNop(), "serviceId", prometheus.Labels{"env": "t"}, c.names)}
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	perApp := 0
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var names []string
			for _, l := range m.GetLabel() {
				names = append(names, l.GetName())
				if l.GetName() == "serviceId" && l.GetValue() != "api" {
					t.Errorf("%s: serviceId=%q, want api", f.GetName(), l.GetValue())
				}
			}
			// jobs_total is the app's: its own applicationId label is
			// no longer one wattd sets, so it stays.
			if slices.Contains(names, appLabel) && f.GetName() != "jobs_total" {
				t.Errorf("%s has the applicationId label: %v", f.GetName(), names)
			}
			if slices.Contains(names, "serviceId") {
				perApp++
			} else if !strings.HasPrefix(f.GetName(), "wattd_log_") { // the runtime's log, of no application
				t.Errorf("%s has no serviceId label: %v", f.GetName(), names)
			}
		}
	}
	for _, name := range []string{"wattd_workers", "wattd_application_restarts_total", "process_cpu_seconds_total",
		"nodejs_gc_duration_seconds", "http_request_all_duration_seconds", "nodejs_eventloop_lag_seconds",
		"wattd_worker_start_duration_seconds", "jobs_total"} {
		if !slices.ContainsFunc(fams, func(f *dto.MetricFamily) bool { return f.GetName() == name }) {
			t.Errorf("no %s in the scrape", name)
		}
	}
	if perApp < 20 {
		t.Errorf("only %d series carry serviceId", perApp)
	}
}
