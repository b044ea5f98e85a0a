package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/wattd/wattd/supervisor/admin"
)

// scrape GETs a metrics endpoint with basic auth and parses the text
// exposition.
func scrape(url, user, pass string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(user, pass)
	resp, err := fresh.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var p expfmt.TextParser
	return p.TextToMetricFamilies(resp.Body)
}

// workerSeries lists "app/worker" of a family's series and checks the
// constant label on each.
func workerSeries(t *testing.T, f *dto.MetricFamily) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, m := range f.GetMetric() {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		if l["env"] != "test" {
			t.Errorf("%s: series %v lacks the configured label env=test", f.GetName(), l)
		}
		out[l["applicationId"]+"/"+l["workerId"]] = true
	}
	return out
}

// needPromFixture skips the test without the integration set-up or the
// prom fixture's packages.
func needPromFixture(t *testing.T) {
	t.Helper()
	integration(t)
	if _, err := os.Stat(fixture("apps/prom/node_modules/prom-client")); err != nil {
		t.Skipf("fixture packages not installed (make deps): %v", err)
	}
}

// TestMetricsEndpoint runs two applications of two workers each with the
// metrics server on and checks the series, their labels, the probes and
// basic authentication; the Node workers' request durations, event-loop lag
// and GC, and the metrics the app registered with prom-client.
func TestMetricsEndpoint(t *testing.T) {
	needPromFixture(t)
	port, mport := freePort(t), freePort(t)
	dir := metricsProject(t, map[string]any{
		"hostname": "127.0.0.1", "port": mport, "endpoint": "/prom",
		"auth":   map[string]any{"username": "scraper", "password": "s3cret"},
		"labels": map[string]any{"env": "test"},
	}, map[string]any{"id": "web", "path": fixture("apps/prom"), "workers": 2},
		map[string]any{"id": "api", "path": fixture("apps/prom"), "workers": 2})
	d := startWattd(t, dir, port, startOpts{})
	base := fmt.Sprintf("http://127.0.0.1:%d", mport)

	// Without credentials the metrics are refused; the probes answer, as
	// Watt's do, so that an orchestrator can call them as they are.
	waitFor(t, 20*time.Second, "the metrics server to listen", func() bool {
		code, _, err := get(fresh, base+"/prom")
		return err == nil && code == http.StatusUnauthorized
	})
	waitFor(t, 30*time.Second, "/ready to answer 200 without credentials", func() bool {
		code, body, err := get(fresh, base+"/ready")
		return err == nil && code == http.StatusOK && strings.TrimSpace(body) == "OK"
	})
	if _, err := scrape(base+"/prom", "scraper", "wrong"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("scrape with a wrong password: %v, want 401", err)
	}

	probe := func(path string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.SetBasicAuth("scraper", "s3cret")
		resp, err := fresh.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = fmt.Fprint(&b, resp.Status)
		return resp.StatusCode, b.String()
	}
	waitFor(t, 30*time.Second, "/ready to answer 200", func() bool { c, _ := probe("/ready"); return c == 200 })
	if c, s := probe("/status"); c != 200 {
		t.Errorf("/status: %s, want 200", s)
	}
	d.waitReady("web", 10*time.Second)
	d.waitReady("api", 10*time.Second)

	want := map[string]bool{"web/0": true, "web/1": true, "api/0": true, "api/1": true}
	perWorker := []string{
		"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
		"nodejs_eventloop_utilization", "nodejs_heap_size_used_bytes", "nodejs_heap_size_total_bytes",
		"wattd_worker_restarts_total", "wattd_worker_up", "thread_cpu_seconds_total",
		// prom-client's process figures, from the second stats report on.
		"nodejs_external_memory_bytes", "nodejs_active_handles_total", "nodejs_active_resources_total",
		"active_resources_event_loop",
		"process_start_time_seconds", "process_cpu_user_seconds_total", "process_cpu_system_seconds_total",
		"process_virtual_memory_bytes", "process_heap_bytes", "process_max_fds", "nodejs_version_info",
	}
	var fams map[string]*dto.MetricFamily
	// Node workers report their heap a moment after they start, their
	// process figures one report later.
	waitFor(t, 20*time.Second, "every worker's nodejs_heap_size_total_bytes and nodejs_external_memory_bytes", func() bool {
		var err error
		fams, err = scrape(base+"/prom", "scraper", "s3cret")
		if err != nil {
			t.Logf("scrape: %v", err)
			return false
		}
		f, e := fams["nodejs_heap_size_total_bytes"], fams["nodejs_external_memory_bytes"]
		return f != nil && len(f.GetMetric()) == 4 && e != nil && len(e.GetMetric()) == 4
	})
	spaces := map[string]bool{}
	for _, m := range fams["nodejs_heap_space_size_used_bytes"].GetMetric() {
		l := labelsOf(m)
		spaces[l["applicationId"]+"/"+l["workerId"]+" "+l["space"]] = true
	}
	for w := range want {
		if !spaces[w+" new"] || !spaces[w+" old"] {
			t.Errorf("nodejs_heap_space_size_used_bytes lacks the new or old space of %s: %v", w, spaces)
		}
	}
	if tcp := fams["nodejs_active_handles"]; tcp == nil || !slices.ContainsFunc(tcp.GetMetric(), func(m *dto.Metric) bool { return labelsOf(m)["type"] == "Server" || labelsOf(m)["type"] == "TCP" }) {
		t.Errorf("nodejs_active_handles has no listening socket of any worker: %v", tcp)
	}
	for _, name := range perWorker {
		f := fams[name]
		if f == nil {
			t.Errorf("no %s in the scrape", name)
			continue
		}
		if got := workerSeries(t, f); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: series for %v, want %v", name, got, want)
		}
		for _, m := range f.GetMetric() {
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			// CPU times are counted in ticks of 10 ms: a fresh worker's may be 0.
			mayBeZero := map[string]bool{"wattd_worker_restarts_total": true, "nodejs_eventloop_utilization": true,
				"process_cpu_seconds_total": true, "process_cpu_user_seconds_total": true, "process_cpu_system_seconds_total": true}
			if v < 0 || !mayBeZero[name] && v == 0 {
				t.Errorf("%s %v = %v", name, m.GetLabel(), v)
			}
		}
	}
	if fams["process_cpu_seconds_total"].GetType() != dto.MetricType_COUNTER {
		t.Errorf("process_cpu_seconds_total is a %s, want a counter", fams["process_cpu_seconds_total"].GetType())
	}
	if fams["nodejs_eventloop_utilization"].GetType() != dto.MetricType_GAUGE {
		t.Errorf("nodejs_eventloop_utilization is a %s, want a gauge", fams["nodejs_eventloop_utilization"].GetType())
	}
	ready := map[string]float64{}
	for _, m := range fams["wattd_workers"].GetMetric() {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		if l["state"] == "ready" {
			ready[l["applicationId"]] = m.GetGauge().GetValue()
		}
	}
	if ready["web"] != 2 || ready["api"] != 2 {
		t.Errorf("wattd_workers{state=ready} = %v, want 2 for web and api", ready)
	}
	if fams["wattd_log_lines_dropped_total"] == nil {
		t.Error("no wattd_log_lines_dropped_total in the scrape")
	}

	checkNodeMetrics(t, fmt.Sprintf("http://127.0.0.1:%d", port), base+"/prom", want)
	checkJSONForm(t, base+"/prom", want)

	// wattd ctl metrics shows the same figures through the admin socket.
	out, err := d.ctl("metrics", "--json", "api")
	if err != nil {
		t.Fatalf("ctl metrics --json api: %v\n%s", err, out)
	}
	var rows []admin.WorkerFigures
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("ctl metrics --json: %v\n%s", err, out)
	}
	if len(rows) != 2 {
		t.Fatalf("ctl metrics api: %d rows, want 2:\n%s", len(rows), out)
	}
	for _, r := range rows {
		if r.App != "api" || r.PID == 0 || r.RSS == 0 || r.OpenFDs == 0 || r.CPU <= 0 || r.ELU == nil ||
			r.HeapTotal == 0 || r.StartSeconds <= 0 || r.LagP99 == nil || r.Requests == nil || *r.Requests == 0 || r.RequestP99 == nil || *r.RequestP99 <= 0 || *r.RequestP99 > 10 {
			t.Errorf("ctl metrics row %+v lacks figures", r)
		}
	}
	table, err := d.ctl("metrics")
	if err != nil || !strings.Contains(table, "HEAP") || !strings.Contains(table, "LAG P99") || !strings.Contains(table, "REQ P99") || strings.Count(table, "\n") != 5 {
		t.Errorf("ctl metrics: %v, want a header and four rows:\n%s", err, table)
	}
}

// checkJSONForm checks the metrics' JSON form, which Watt's server gives
// a client that accepts application/json and not text/plain: the same
// figures as the text form, each worker's series labelled, histograms
// with their buckets, sum and count.
func checkJSONForm(t *testing.T, url string, want map[string]bool) {
	t.Helper()
	fetch := func(accept string) (string, string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.SetBasicAuth("scraper", "s3cret")
		req.Header.Set("Accept", accept)
		resp, err := fresh.Do(req)
		if err != nil {
			t.Fatalf("GET %s (Accept: %s): %v", url, accept, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s (Accept: %s): %s\n%s", url, accept, resp.Status, b)
		}
		return resp.Header.Get("Content-Type"), string(b)
	}
	// Prometheus's own Accept header takes text/plain: the text form.
	if ct, _ := fetch("application/openmetrics-text;version=1.0.0;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"); strings.HasPrefix(ct, "application/json") {
		t.Errorf("a scraper that accepts text/plain got %s", ct)
	}
	if ct, _ := fetch("application/json, text/plain"); strings.HasPrefix(ct, "application/json") {
		t.Errorf("Accept: application/json, text/plain got %s, want the text form as Watt gives", ct)
	}
	ct, body := fetch("application/json")
	if !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Accept: application/json got %s:\n%.300s", ct, body)
	}
	var metrics []struct {
		Name   string `json:"name"`
		Help   string `json:"help"`
		Type   string `json:"type"`
		Values []struct {
			Value      *float64       `json:"value"`
			Labels     map[string]any `json:"labels"`
			MetricName string         `json:"metricName"`
		} `json:"values"`
	}
	if err := json.Unmarshal([]byte(body), &metrics); err != nil {
		t.Fatalf("the JSON form does not parse: %v\n%.300s", err, body)
	}
	byName := map[string]int{}
	for i, m := range metrics {
		byName[m.Name] = i
	}
	i, ok := byName["nodejs_heap_size_total_bytes"]
	if !ok {
		t.Fatalf("the JSON form has no nodejs_heap_size_total_bytes: %.500s", body)
	}
	heap := metrics[i]
	got := map[string]bool{}
	for _, v := range heap.Values {
		if _, ok := v.Labels["workerId"].(float64); !ok {
			t.Errorf("nodejs_heap_size_total_bytes: workerId %#v, want a number as in Watt's JSON", v.Labels["workerId"])
		}
		got[fmt.Sprint(v.Labels["applicationId"], "/", v.Labels["workerId"])] = true
		if v.Value == nil || *v.Value <= 0 {
			t.Errorf("nodejs_heap_size_total_bytes %v = %v", v.Labels, v.Value)
		}
	}
	if heap.Type != "gauge" || heap.Help == "" || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("nodejs_heap_size_total_bytes: type %q, help %q, series %v; want a gauge with help and %v", heap.Type, heap.Help, got, want)
	}
	if i, ok := byName["process_cpu_seconds_total"]; !ok || metrics[i].Type != "counter" {
		t.Errorf("process_cpu_seconds_total missing or not a counter in the JSON form")
	}
	histograms := 0
	for _, m := range metrics {
		if m.Type != "histogram" {
			continue
		}
		histograms++
		var inf, sum, count bool
		for _, v := range m.Values {
			switch v.MetricName {
			case m.Name + "_bucket":
				inf = inf || v.Labels["le"] == "+Inf"
			case m.Name + "_sum":
				sum = true
			case m.Name + "_count":
				count = true
			}
		}
		if len(m.Values) > 0 && (!inf || !sum || !count) {
			t.Errorf("histogram %s: +Inf bucket %v, sum %v, count %v; want all", m.Name, inf, sum, count)
		}
	}
	if histograms == 0 {
		t.Errorf("the JSON form has no histogram")
	}
}

// TestMetricsReadyNamesUnreadyApp checks that /ready fails, naming the
// application, while one application has no ready worker, and that the
// worker-state gauge shows it.
func TestMetricsReadyNamesUnreadyApp(t *testing.T) {
	integration(t)
	port, mport := freePort(t), freePort(t)
	dir := project(t, map[string]any{
		"entrypoint": "web",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"restart":    map[string]any{"initialDelay": 20, "maxDelay": 100, "maxRestarts": 2},
		"metrics": map[string]any{"hostname": "127.0.0.1", "port": mport,
			"liveness": map[string]any{"endpoint": "/live", "fail": map[string]any{"statusCode": 503}}},
		"applications": []any{
			map[string]any{"id": "web", "path": fixture("apps/plain")},
			map[string]any{"id": "broken", "path": fixture("faults/crash-start")},
		},
	})
	d := startWattd(t, dir, port, startOpts{})
	d.waitReady("web", 20*time.Second)
	base := fmt.Sprintf("http://127.0.0.1:%d", mport)
	waitFor(t, 20*time.Second, "the broken application to fail", func() bool {
		return d.app("broken").State == "failed"
	})
	code, body, err := get(fresh, base+"/ready")
	if err != nil || code != http.StatusInternalServerError || !strings.Contains(body, `application "broken" has no ready worker`) {
		t.Errorf("/ready: %d %q %v, want 500 naming broken", code, body, err)
	}
	if strings.Contains(body, `"web"`) {
		t.Errorf("/ready names web, which is ready: %q", body)
	}
	// The liveness probe as configured: another path, another code.
	if code, body, err := get(fresh, base+"/live"); err != nil || code != http.StatusServiceUnavailable || !strings.Contains(body, `application "broken" has no ready worker`) {
		t.Errorf("/live: %d %q %v, want 503 naming broken", code, body, err)
	}
	if code, _, err := get(fresh, base+"/status"); err != nil || code != http.StatusNotFound {
		t.Errorf("/status with the liveness probe moved: %d %v, want 404", code, err)
	}
	fams, err := scrape(base+"/metrics", "", "")
	if err != nil {
		t.Fatal(err)
	}
	failed := -1.0
	for _, m := range fams["wattd_workers"].GetMetric() {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		if l["applicationId"] == "broken" && l["state"] == "failed" {
			failed = m.GetGauge().GetValue()
		}
	}
	if failed != 1 {
		t.Errorf(`wattd_workers{applicationId="broken",state="failed"} = %v, want 1`, failed)
	}
	restarts := byLabels(fams["wattd_application_restarts_total"], "applicationId", "reason")
	// crash-start exits with status 1 before it is ready; maxRestarts 2.
	if restarts["broken/exit"] != 2 || restarts["web/exit"] != 0 || restarts["broken/oom"] != 0 {
		t.Errorf("wattd_application_restarts_total = %v, want broken/exit 2 and zeros elsewhere", restarts)
	}
	for _, m := range fams["wattd_worker_start_duration_seconds"].GetMetric() {
		app := ""
		for _, p := range m.GetLabel() {
			if p.GetName() == "applicationId" {
				app = p.GetValue()
			}
		}
		h := m.GetHistogram()
		switch {
		case app == "web" && (h.GetSampleCount() != 1 || h.GetSampleSum() <= 0 || h.GetSampleSum() > 20):
			t.Errorf("web start duration: count %d sum %v, want one start of a few seconds at most", h.GetSampleCount(), h.GetSampleSum())
		case app == "web" && h.GetBucket()[len(h.GetBucket())-1].GetCumulativeCount() != 1:
			t.Errorf("web start duration buckets %v: the start is in none", h.GetBucket())
		case app == "broken" && h.GetSampleCount() != 0:
			t.Errorf("broken start duration: count %d, want 0 (never ready)", h.GetSampleCount())
		}
	}
}

// plainWithMetrics is a project of one application, the plain fixture,
// with the metrics server on loopback port mport.
func plainWithMetrics(t *testing.T, mport int) string {
	t.Helper()
	return metricsProject(t, map[string]any{"hostname": "127.0.0.1", "port": mport}, map[string]any{"id": "web", "path": fixture("apps/plain")})
}

// TestMetricsPortTaken checks that wattd refuses to start, saying why,
// when the metrics port is taken, rather than run without its probes.
func TestMetricsPortTaken(t *testing.T) {
	integration(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	mport := l.Addr().(*net.TCPAddr).Port
	port := freePort(t)
	dir := plainWithMetrics(t, mport)
	d := startWattd(t, dir, port, startOpts{})
	if code := d.wait(20 * time.Second); code == 0 {
		t.Fatalf("wattd exited 0 with the metrics port taken")
	}
	if want := fmt.Sprintf("metrics: listen on 127.0.0.1 port %d", mport); !strings.Contains(d.out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, d.out.String())
	}
}

// labelsOf returns a series' labels as a map.
func labelsOf(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

// checkNodeMetrics sends requests to the entrypoint (apps/prom: web calls
// api over the mesh) until every worker in want has served some, then
// checks what Node workers report with metrics on: the request histogram,
// event-loop lag, GC, and the app's own prom-client metrics, merged.
func checkNodeMetrics(t *testing.T, public, endpoint string, want map[string]bool) {
	t.Helper()
	var fams map[string]*dto.MetricFamily
	waitFor(t, 30*time.Second, "request series from every worker", func() bool {
		// Fresh connections, so that the kernel spreads them over both
		// web workers; web's mesh calls go round the api workers.
		for range 4 {
			_, _, _ = get(fresh, public+"/call")
			_, _, _ = get(fresh, public+"/fail")
		}
		var err error
		if fams, err = scrape(endpoint, "scraper", "s3cret"); err != nil {
			t.Logf("scrape: %v", err)
			return false
		}
		workers := func(name string) map[string]bool {
			got := map[string]bool{}
			for _, m := range fams[name].GetMetric() {
				l := labelsOf(m)
				got[l["applicationId"]+"/"+l["workerId"]] = true
			}
			return got
		}
		// The app metrics lag a stats report behind the requests.
		return maps.Equal(workers("http_request_all_duration_seconds"), want) && maps.Equal(workers("fixture_answers_total"), want)
	})

	reqs := fams["http_request_all_duration_seconds"]
	if reqs.GetType() != dto.MetricType_HISTOGRAM {
		t.Errorf("http_request_all_duration_seconds is a %s, want a histogram", reqs.GetType())
	}
	statuses := map[string]bool{}
	for _, m := range reqs.GetMetric() {
		l := labelsOf(m)
		if names := slices.Sorted(maps.Keys(l)); !slices.Equal(names, []string{"applicationId", "env", "method", "status_code", "workerId"}) {
			t.Errorf("http_request_all_duration_seconds labels %v", names)
		}
		if l["method"] != "GET" {
			t.Errorf("http_request_all_duration_seconds series %v: only GETs were sent", l)
		}
		statuses[l["applicationId"]+" "+l["status_code"]] = true
		var bounds []float64
		for _, b := range m.GetHistogram().GetBucket() {
			if !math.IsInf(b.GetUpperBound(), 1) { // the text has it, the parser keeps it
				bounds = append(bounds, b.GetUpperBound())
			}
		}
		if want := []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}; !slices.Equal(bounds, want) {
			t.Errorf("http_request_all_duration_seconds buckets %v, want Watt's %v", bounds, want)
		}
		if m.GetHistogram().GetSampleCount() == 0 || m.GetHistogram().GetSampleSum() <= 0 {
			t.Errorf("http_request_all_duration_seconds %v: %v", l, m.GetHistogram())
		}
	}
	for _, s := range []string{"web 200", "web 500", "api 200"} {
		if !statuses[s] {
			t.Errorf("no http_request_all_duration_seconds series of %s (have %v)", s, statuses)
		}
	}
	checkRequestSummary(t, reqs, fams["http_request_all_summary_seconds"])

	for _, name := range []string{"nodejs_eventloop_lag_seconds", "nodejs_eventloop_lag_min_seconds", "nodejs_eventloop_lag_max_seconds",
		"nodejs_eventloop_lag_mean_seconds", "nodejs_eventloop_lag_stddev_seconds", "nodejs_eventloop_lag_p50_seconds",
		"nodejs_eventloop_lag_p90_seconds", "nodejs_eventloop_lag_p99_seconds"} {
		f := fams[name]
		if f.GetType() != dto.MetricType_GAUGE {
			t.Errorf("%s: %v, want a gauge", name, f)
			continue
		}
		if got := workerSeries(t, f); !maps.Equal(got, want) {
			t.Errorf("%s: series for %v, want %v", name, got, want)
		}
	}

	gc := fams["nodejs_gc_duration_seconds"]
	if gc.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("nodejs_gc_duration_seconds: %v, want a histogram", gc)
	}
	kinds := map[string]bool{}
	for _, m := range gc.GetMetric() {
		kinds[labelsOf(m)["kind"]] = true
	}
	if got := workerSeries(t, gc); !maps.Equal(got, want) || !maps.Equal(kinds, map[string]bool{"major": true, "minor": true, "incremental": true, "weakcb": true}) {
		t.Errorf("nodejs_gc_duration_seconds: series for %v of kinds %v", got, kinds)
	}

	// The app's own counter, with wattd's labels added, one family for
	// every worker; its gauge named like wattd's heap gauge is dropped.
	answers := fams["fixture_answers_total"]
	if answers.GetType() != dto.MetricType_COUNTER || answers.GetHelp() != "Requests the fixture app answered, by path." {
		t.Errorf("fixture_answers_total: %v", answers)
	}
	paths := map[string]bool{}
	for _, m := range answers.GetMetric() {
		l := labelsOf(m)
		if names := slices.Sorted(maps.Keys(l)); !slices.Equal(names, []string{"applicationId", "env", "path", "workerId"}) {
			t.Errorf("fixture_answers_total labels %v", names)
		}
		paths[l["applicationId"]+" "+l["path"]] = true
	}
	if !paths["web /call"] || !paths["web /fail"] || !paths["api /hello"] {
		t.Errorf("fixture_answers_total series %v", paths)
	}
	if got := workerSeries(t, answers); len(got) != 4 {
		t.Errorf("fixture_answers_total from workers %v, want all four", got)
	}
	heap := fams["nodejs_heap_size_used_bytes"]
	if len(heap.GetMetric()) != 4 || heap.GetHelp() == "A clash." {
		t.Errorf("nodejs_heap_size_used_bytes: %v, want wattd's four series only", heap)
	}
}

// TestRequestDurationsOnOneConnection checks the request histogram for
// requests that share a connection, the case where the preload keeps a
// request's start on the socket: three keep-alive requests one after the
// other (100 ms, then two at once), then two pipelined in one write (300
// ms, and one at once that is answered after it).
func TestRequestDurationsOnOneConnection(t *testing.T) {
	integration(t)
	port, mport := freePort(t), freePort(t)
	dir := plainWithMetrics(t, mport)
	d := startWattd(t, dir, port, startOpts{})
	d.waitReady("web", 30*time.Second)
	c := dialOne(t, port)
	req := func(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n" }
	for _, p := range []string{"/slow?ms=100", "/", "/"} {
		c.send(req(p))
		c.read(1)
	}
	c.send(req("/slow?ms=300") + req("/"))
	c.read(2)

	// Cumulative counts at the bounds that separate the five.
	want := map[float64]uint64{0.05: 2, 0.25: 3, 0.5: 5}
	var got map[float64]uint64
	var count uint64
	// The figures reach wattd with the worker's next stats report.
	for deadline := time.Now().Add(10 * time.Second); count < 5 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		fams, err := scrape(fmt.Sprintf("http://127.0.0.1:%d/metrics", mport), "", "")
		if err != nil {
			continue
		}
		got, count = map[float64]uint64{}, 0
		for _, m := range fams["http_request_all_duration_seconds"].GetMetric() {
			if labelsOf(m)["applicationId"] != "web" {
				continue
			}
			count += m.GetHistogram().GetSampleCount()
			for _, b := range m.GetHistogram().GetBucket() {
				if _, ok := want[b.GetUpperBound()]; ok {
					got[b.GetUpperBound()] += b.GetCumulativeCount()
				}
			}
		}
	}
	if count != 5 || !maps.Equal(got, want) {
		t.Errorf("web's request histogram: %d requests, cumulative counts %v; want 5 and %v", count, got, want)
	}
}

// TestMetricsApplicationLabel runs an application with Watt's
// applicationLabel set, as a project made for Watt 2's dashboards does, and
// a constant label of the same name: every series of the application,
// wattd's, the Node worker's and the app's own, names it with serviceId,
// none with applicationId, and the constant label is left out with a
// warning rather than refused.
func TestMetricsApplicationLabel(t *testing.T) {
	needPromFixture(t)
	port, mport := freePort(t), freePort(t)
	dir := metricsProject(t, map[string]any{
		"hostname": "127.0.0.1", "port": mport, "applicationLabel": "serviceId",
		"labels": map[string]any{"env": "test", "serviceId": "not-this"},
	}, map[string]any{"id": "web", "path": fixture("apps/prom"), "workers": 1})
	d := startWattd(t, dir, port, startOpts{})
	d.waitReady("web", 30*time.Second)
	d.waitOutput(`label \"serviceId\" is left out`, 5*time.Second)
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)
	var fams map[string]*dto.MetricFamily
	// The app's own counter counts requests; the worker's report carries
	// it a moment later.
	waitFor(t, 20*time.Second, "the app's fixture_answers_total and the worker's request durations in the scrape", func() bool {
		if code, _, err := get(fresh, d.url("/")); err != nil || code != http.StatusOK {
			return false
		}
		var err error
		fams, err = scrape(url, "", "")
		return err == nil && fams["fixture_answers_total"] != nil && fams["http_request_all_duration_seconds"] != nil
	})
	perApp := 0
	for _, name := range slices.Sorted(maps.Keys(fams)) {
		for _, m := range fams[name].GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if _, ok := l["applicationId"]; ok {
				t.Errorf("%s %v has an applicationId label", name, l)
			}
			if l["env"] != "test" {
				t.Errorf("%s %v lacks env=test", name, l)
			}
			switch v, ok := l["serviceId"]; {
			case ok && v == "web":
				perApp++
			case ok:
				t.Errorf("%s %v: serviceId=%q, want web", name, l, v)
			case name != "wattd_log_lines_dropped_total":
				t.Errorf("%s %v has no serviceId label", name, l)
			}
		}
	}
	for _, name := range []string{"wattd_workers", "wattd_worker_up", "process_resident_memory_bytes",
		"nodejs_heap_size_total_bytes", "http_request_all_duration_seconds", "nodejs_gc_duration_seconds", "fixture_answers_total"} {
		if fams[name] == nil {
			t.Errorf("no %s in the scrape", name)
		}
	}
	t.Logf("%d series carry serviceId=web", perApp)
}

// TestRequestDurationsOfFrameworks checks the request histogram of an
// unchanged Express app and an unchanged Fastify app: each request served
// is counted once under its method and status code, whatever the framework
// does to its response objects (Express gives each one a prototype of its
// own), and HEAD requests are not timed, as in Watt.
func TestRequestDurationsOfFrameworks(t *testing.T) {
	integration(t)
	for _, fw := range []string{"express", "fastify"} {
		t.Run(fw, func(t *testing.T) {
			if _, err := os.Stat(fixture("apps/" + fw + "/node_modules/" + fw)); err != nil {
				t.Skipf("fixture packages not installed (make deps): %v", err)
			}
			port, mport := freePort(t), freePort(t)
			dir := metricsProject(t, map[string]any{"hostname": "127.0.0.1", "port": mport}, map[string]any{"id": "web", "path": fixture("apps/" + fw), "workers": 1})
			d := startWattd(t, dir, port, startOpts{})
			d.waitReady("web", 30*time.Second)
			client := &http.Client{Timeout: 10 * time.Second}
			send := func(method, path string, want int) {
				req, _ := http.NewRequest(method, d.url(path), nil)
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					t.Fatalf("%s %s: %d, want %d", method, path, resp.StatusCode, want)
				}
			}
			for range 20 {
				send(http.MethodGet, "/", 200)
			}
			for range 3 {
				send(http.MethodGet, "/missing", 404)
			}
			send(http.MethodHead, "/", 200)

			want := map[string]uint64{"GET 200": 20, "GET 404": 3}
			got := waitHistogramCounts(fmt.Sprintf("http://127.0.0.1:%d/metrics", mport), "http_request_all_duration_seconds", want,
				func(l map[string]string) string { return l["method"] + " " + l["status_code"] })
			if !maps.Equal(got, want) {
				t.Errorf("request histogram counts %v, want %v", got, want)
			}
		})
	}
}

// metricsProject is a watt.json whose entrypoint, "web", listens on
// loopback at the test's port, with metrics as its "metrics" value and
// apps as its applications.
func metricsProject(t *testing.T, metrics map[string]any, apps ...any) string {
	t.Helper()
	return project(t, map[string]any{
		"entrypoint":   "web",
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"metrics":      metrics,
		"applications": apps,
	})
}

// TestRequestLabelsFromHeaders runs Watt's httpCustomLabels: the request
// histogram gets a label whose value is each request's header, or the
// default without it.
func TestRequestLabelsFromHeaders(t *testing.T) {
	integration(t)
	port, mport := freePort(t), freePort(t)
	dir := metricsProject(t, map[string]any{"hostname": "127.0.0.1", "port": mport,
		"httpCustomLabels": []any{map[string]any{"name": "tenant", "header": "X-Tenant"}}},
		map[string]any{"id": "web", "path": fixture("apps/plain")})
	d := startWattd(t, dir, port, startOpts{})
	d.waitReady("web", 30*time.Second)
	send := func(tenant string, n int) {
		for range n {
			req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
			if tenant != "" {
				req.Header.Set("X-Tenant", tenant)
			}
			resp, err := fresh.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	send("acme", 3)
	send("globex", 2)
	send("", 1)
	want := map[string]uint64{"acme": 3, "globex": 2, "unknown": 1}
	got := waitHistogramCounts(fmt.Sprintf("http://127.0.0.1:%d/metrics", mport), "http_request_all_duration_seconds", want,
		func(l map[string]string) string {
			if l["applicationId"] != "web" || l["method"] != "GET" || l["status_code"] != "200" {
				return ""
			}
			return l["tenant"]
		})
	if !maps.Equal(got, want) {
		t.Errorf("GET 200 by tenant: %v, want %v", got, want)
	}
}

// waitHistogramCounts scrapes endpoint until the sample counts of the
// histogram family, summed by key of each series' labels ("" leaves a
// series out), equal want, or 10 s have passed: a worker's figures reach
// wattd with its next stats report. It returns the last counts.
func waitHistogramCounts(endpoint, family string, want map[string]uint64, key func(map[string]string) string) map[string]uint64 {
	var got map[string]uint64
	for deadline := time.Now().Add(10 * time.Second); !maps.Equal(got, want) && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		fams, err := scrape(endpoint, "", "")
		if err != nil {
			continue
		}
		got = map[string]uint64{}
		for _, m := range fams[family].GetMetric() {
			if k := key(labelsOf(m)); k != "" {
				got[k] += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return got
}

// checkRequestSummary: http_request_all_summary_seconds has a series for
// each series of the request histogram, with the same labels, Watt's
// quantiles and the same count and sum. The test's requests are all in the
// summary's window (it is younger than 50 s), so each quantile lies in the
// histogram bucket that holds its rank, give or take the window's 2.2%.
func checkRequestSummary(t *testing.T, hist, sum *dto.MetricFamily) {
	t.Helper()
	if sum.GetType() != dto.MetricType_SUMMARY {
		t.Fatalf("http_request_all_summary_seconds is a %s, want a summary", sum.GetType())
	}
	key := func(m *dto.Metric) string {
		l := labelsOf(m)
		return l["applicationId"] + "/" + l["workerId"] + " " + l["method"] + " " + l["status_code"] + " " + l["env"]
	}
	byKey := map[string]*dto.Summary{}
	for _, m := range sum.GetMetric() {
		byKey[key(m)] = m.GetSummary()
	}
	if len(byKey) != len(hist.GetMetric()) {
		t.Errorf("%d summary series for %d histogram series", len(byKey), len(hist.GetMetric()))
	}
	for _, m := range hist.GetMetric() {
		h, s := m.GetHistogram(), byKey[key(m)]
		if s == nil {
			t.Errorf("no summary series for %s", key(m))
			continue
		}
		if s.GetSampleCount() != h.GetSampleCount() || s.GetSampleSum() != h.GetSampleSum() {
			t.Errorf("%s: summary count %d sum %v, histogram %d %v", key(m), s.GetSampleCount(), s.GetSampleSum(), h.GetSampleCount(), h.GetSampleSum())
		}
		var qs []float64
		prev := 0.0
		for _, q := range s.GetQuantile() {
			qs = append(qs, q.GetQuantile())
			v := q.GetValue()
			rank := uint64(math.Max(1, math.Ceil(q.GetQuantile()*float64(h.GetSampleCount()))))
			lower, upper := 0.0, math.Inf(1)
			for _, b := range h.GetBucket() {
				if b.GetCumulativeCount() >= rank {
					upper = b.GetUpperBound()
					break
				}
				lower = b.GetUpperBound()
			}
			if v < prev || v < lower/1.03 || v > upper*1.03 {
				t.Errorf("%s: quantile %v = %v, want it in the histogram's bucket (%v, %v] of rank %d, not below the quantile before", key(m), q.GetQuantile(), v, lower, upper, rank)
			}
			prev = v
		}
		if want := []float64{0.01, 0.05, 0.5, 0.9, 0.95, 0.99, 0.999}; !slices.Equal(qs, want) {
			t.Errorf("%s: quantiles %v, want Watt's %v", key(m), qs, want)
		}
	}
}

// TestAppMetricsOverFrame: an app whose own metrics would make a stats
// report over the control channel's frame limit once JSON-escaped (a label
// value of control characters, each six bytes in JSON) keeps its worker,
// which wattd would kill for an oversized frame: its reports go on without
// the app's metrics, and the worker says why.
func TestAppMetricsOverFrame(t *testing.T) {
	needPromFixture(t)
	port, mport := freePort(t), freePort(t)
	dir := metricsProject(t, map[string]any{"hostname": "127.0.0.1", "port": mport},
		map[string]any{"id": "web", "path": fixture("apps/prom")})
	d := startWattd(t, dir, port, startOpts{})
	pid := d.waitReady("web", 30*time.Second).Workers[0].PID
	base := fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)
	// worker reads the worker's uptime from a scrape, and whether the
	// app's own counter is in it; ok is false while neither is.
	worker := func() (uptime float64, appMetrics, ok bool) {
		fams, err := scrape(base, "", "")
		if err != nil || fams["wattd_worker_uptime_seconds"] == nil {
			return 0, false, false
		}
		return fams["wattd_worker_uptime_seconds"].GetMetric()[0].GetGauge().GetValue(), fams["fixture_answers_total"] != nil, true
	}
	if code, _, err := get(fresh, d.url("/")); err != nil || code != http.StatusOK {
		t.Fatalf("GET /: %d %v", code, err)
	}
	waitFor(t, 20*time.Second, "the app's counter in the scrape", func() bool {
		_, app, ok := worker()
		return ok && app
	})
	if code, _, err := get(fresh, d.url("/escapes")); err != nil || code != http.StatusOK {
		t.Fatalf("GET /escapes: %d %v", code, err)
	}
	d.waitOutput("reporting without them", 20*time.Second)
	// Two more reports, the worker the same.
	var at float64
	waitFor(t, 20*time.Second, "wattd's own series of the worker without the app's", func() bool {
		up, app, ok := worker()
		at = up
		return ok && !app
	})
	waitFor(t, 20*time.Second, "two more seconds of the worker's uptime", func() bool {
		up, _, ok := worker()
		return ok && up > at+2
	})
	if w := d.app("web").Workers[0]; w.PID != pid || w.Restarts != 0 {
		t.Fatalf("worker %d (restarts %d), want %d never restarted: killed for its report", w.PID, w.Restarts, pid)
	}
}

// TestAppMetricsOverBound: an app registry that renders over the
// preload's bound is left out of the reports, said once, and not rendered
// again at every report (which cost the worker's event loop for nothing):
// the next try is a minute later.
func TestAppMetricsOverBound(t *testing.T) {
	needPromFixture(t)
	port, mport := freePort(t), freePort(t)
	dir := metricsProject(t, map[string]any{"hostname": "127.0.0.1", "port": mport},
		map[string]any{"id": "web", "path": fixture("apps/prom"), "env": map[string]any{"WATTD_STATS_INTERVAL_MS": "100"}})
	d := startWattd(t, dir, port, startOpts{})
	pid := d.waitReady("web", 30*time.Second).Workers[0].PID
	renders := func() int {
		t.Helper()
		var a struct{ Renders int }
		_, body, err := get(fresh, d.url("/renders"))
		if err != nil || json.Unmarshal([]byte(body), &a) != nil {
			t.Fatalf("GET /renders: %v %s", err, body)
		}
		return a.Renders
	}
	// Rendered at every report (100 ms) while the registry is small.
	before := renders()
	waitFor(t, 10*time.Second, "the registry rendered at the reports", func() bool { return renders() >= before+5 })
	if code, _, err := get(fresh, d.url("/huge")); err != nil || code != http.StatusOK {
		t.Fatalf("GET /huge: %d %v", code, err)
	}
	d.waitOutput("not reporting it (rendered again in 60 s)", 20*time.Second)
	after := renders()
	base := fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)
	uptime := func() float64 {
		fams, err := scrape(base, "", "")
		if err != nil || fams["wattd_worker_uptime_seconds"] == nil {
			return 0
		}
		return fams["wattd_worker_uptime_seconds"].GetMetric()[0].GetGauge().GetValue()
	}
	from := uptime()
	waitFor(t, 20*time.Second, "two more seconds of reports", func() bool { return uptime() > from+2 })
	if n := renders() - after; n > 1 {
		t.Errorf("rendered %d times in 20 reports after it came out over the bound, want none", n)
	}
	if w := d.app("web").Workers[0]; w.PID != pid || strings.Count(d.out.String(), "over the 262144 wattd takes") != 1 {
		t.Errorf("worker %d (want %d), output:\n%s", w.PID, pid, d.out.String())
	}
}

// TestPrometheusWithoutPromClient: an app that reads Watt's
// globalThis.platformatic.prometheus without prom-client among its
// packages gets undefined, as documented, and wattd's log says why (the
// package does not resolve from the app, and how to add it) instead of
// leaving the app's TypeError about reading 'client' of undefined alone.
func TestPrometheusWithoutPromClient(t *testing.T) {
	integration(t)
	port := freePort(t)
	app := fixture("apps/prom-missing")
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": app}},
	})
	d := startWattd(t, dir, port, startOpts{})
	if body := waitHTTP(t, d.url("/"), 20*time.Second); !strings.Contains(body, "prometheus is undefined") {
		t.Errorf("GET / = %q, want prometheus undefined", body)
	}
	d.waitOutput("globalThis.platformatic.prometheus is undefined: neither prom-client nor @platformatic/prom-client resolves from "+app, 10*time.Second)
	d.waitOutput("npm install prom-client", 10*time.Second)
}

// TestPrometheusFromWattsFork: an app that has Watt's fork of prom-client
// (@platformatic/prom-client, which Watt's own packages bring) and not
// prom-client itself gets {client, registry} from it.
func TestPrometheusFromWattsFork(t *testing.T) {
	integration(t)
	fork, err := filepath.Abs(fixture("apps/globals/node_modules/@platformatic/prom-client"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fork); err != nil {
		t.Skipf("no @platformatic/prom-client installed (make deps): %v", err)
	}
	app := t.TempDir()
	if err := os.MkdirAll(filepath.Join(app, "node_modules", "@platformatic"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(fork, filepath.Join(app, "node_modules", "@platformatic", "prom-client")); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(fixture("apps/prom-missing/index.js"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(app, "index.js"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, filepath.Join(app, "package.json"), map[string]any{"name": "web", "main": "index.js"})
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": app}},
	})
	d := startWattd(t, dir, freePort(t), startOpts{})
	if body := waitHTTP(t, d.url("/"), 20*time.Second); !strings.Contains(body, "prometheus is set") {
		t.Errorf("GET / = %q, want prometheus set from @platformatic/prom-client", body)
	}
}
