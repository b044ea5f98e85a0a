package main_test

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/proto"
)

// otlpMetricsReceiver is an OTLP/HTTP metrics collector on loopback that
// keeps every export request it is sent.
type otlpMetricsReceiver struct {
	*httptest.Server
	mu   sync.Mutex
	got  []*colmetricspb.ExportMetricsServiceRequest
	bad  []string // what was wrong with a push
	keys []string // the x-api-key of each push
}

func newOTLPMetricsReceiver(t *testing.T) *otlpMetricsReceiver {
	r := &otlpMetricsReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, err := io.ReadAll(req.Body)
		msg := &colmetricspb.ExportMetricsServiceRequest{}
		if err == nil {
			err = proto.Unmarshal(b, msg)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		switch {
		case req.Method != http.MethodPost || req.URL.Path != "/v1/metrics":
			r.bad = append(r.bad, req.Method+" "+req.URL.Path)
		case req.Header.Get("Content-Type") != "application/x-protobuf":
			r.bad = append(r.bad, "Content-Type "+req.Header.Get("Content-Type"))
		case err != nil:
			r.bad = append(r.bad, err.Error())
		default:
			r.got = append(r.got, msg)
			r.keys = append(r.keys, req.Header.Get("X-Api-Key"))
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.Close)
	return r
}

// last is the newest push, nil before the first.
func (r *otlpMetricsReceiver) last() *colmetricspb.ExportMetricsServiceRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) == 0 {
		return nil
	}
	return r.got[len(r.got)-1]
}

// byService indexes a push by service.name and metric name.
func byService(req *colmetricspb.ExportMetricsServiceRequest) map[string]map[string]*metricspb.Metric {
	out := map[string]map[string]*metricspb.Metric{}
	for _, rm := range req.GetResourceMetrics() {
		name := ""
		for _, kv := range rm.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				name = kv.GetValue().GetStringValue()
			}
		}
		if out[name] == nil {
			out[name] = map[string]*metricspb.Metric{}
		}
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				out[name][m.GetName()] = m
			}
		}
	}
	return out
}

// TestMetricsOTLPPush runs two applications with Watt's
// metrics.otlpExporter pointing at a collector in the test: every
// interval wattd pushes what its endpoint serves, one resource per
// application (service.name its id) and one for wattd's own series, with
// the configured header; the Node workers' request histogram, their heap
// gauges, wattd's counters and the app's own prom-client metrics are
// there with their workerId; and when wattd stops it pushes once more.
func TestMetricsOTLPPush(t *testing.T) {
	needPromFixture(t)
	recv := newOTLPMetricsReceiver(t)
	port, mport := freePort(t), freePort(t)
	dir := metricsProject(t, map[string]any{
		"hostname": "127.0.0.1", "port": mport,
		"otlpExporter": map[string]any{"endpoint": recv.URL + "/v1/metrics", "interval": 300, "headers": map[string]any{"x-api-key": "k1"}},
	}, map[string]any{"id": "web", "path": fixture("apps/prom"), "workers": 1},
		map[string]any{"id": "api", "path": fixture("apps/prom"), "workers": 1})
	d := startWattd(t, dir, port, startOpts{})
	d.waitReady("web", 30*time.Second)
	d.waitReady("api", 30*time.Second)
	if code, body, err := get(fresh, d.url("/call")); err != nil || code != http.StatusOK {
		t.Fatalf("GET /call: %d %s %v", code, body, err)
	}

	// complete tells what the push still lacks.
	complete := func(req *colmetricspb.ExportMetricsServiceRequest) string {
		svc := byService(req)
		for _, app := range []string{"web", "api"} {
			h := svc[app]["http_request_all_duration_seconds"].GetHistogram()
			if h == nil || len(h.GetDataPoints()) == 0 || h.GetDataPoints()[0].GetCount() == 0 {
				return app + "'s request histogram"
			}
			if svc[app]["fixture_answers_total"].GetSum() == nil {
				return app + "'s own prom-client counter"
			}
		}
		if svc["wattd"]["wattd_log_lines_dropped_total"].GetSum() == nil {
			return "wattd's own series"
		}
		return ""
	}
	var lacks string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if req := recv.last(); req != nil {
			if lacks = complete(req); lacks == "" {
				break
			}
		} else {
			lacks = "any push"
		}
	}
	if lacks != "" {
		t.Fatalf("no push with %s", lacks)
	}
	svc := byService(recv.last())
	if names := slices.Sorted(maps.Keys(svc)); !slices.Equal(names, []string{"api", "wattd", "web"}) {
		t.Errorf("resources %v, want api, wattd, web", names)
	}
	h := svc["web"]["http_request_all_duration_seconds"].GetHistogram()
	if h.GetAggregationTemporality() != metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE {
		t.Errorf("request histogram temporality %v", h.GetAggregationTemporality())
	}
	dp := h.GetDataPoints()[0]
	if want := []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}; !slices.Equal(dp.GetExplicitBounds(), want) ||
		len(dp.GetBucketCounts()) != len(want)+1 {
		t.Errorf("request histogram bounds %v (%d counts), want Watt's %v and one more count", dp.GetExplicitBounds(), len(dp.GetBucketCounts()), want)
	}
	attrs := map[string]string{}
	for _, kv := range dp.GetAttributes() {
		attrs[kv.GetKey()] = kv.GetValue().GetStringValue()
	}
	if attrs["applicationId"] != "web" || attrs["workerId"] != "0" || attrs["method"] != "GET" || attrs["status_code"] != "200" {
		t.Errorf("request histogram attributes %v", attrs)
	}
	if g := svc["api"]["nodejs_heap_size_used_bytes"].GetGauge(); g == nil || g.GetDataPoints()[0].GetAsDouble() <= 0 {
		t.Errorf("api's heap gauge: %v", svc["api"]["nodejs_heap_size_used_bytes"])
	}
	if s := svc["web"]["wattd_worker_restarts_total"].GetSum(); s == nil || !s.GetIsMonotonic() {
		t.Errorf("web's restarts: %v, want a monotonic sum", svc["web"]["wattd_worker_restarts_total"])
	}
	recv.mu.Lock()
	bad, keys, before := recv.bad, recv.keys, len(recv.got)
	recv.mu.Unlock()
	if len(bad) > 0 {
		t.Errorf("pushes the collector could not read: %v", bad)
	}
	for _, k := range keys {
		if k != "k1" {
			t.Errorf("a push with x-api-key %q, want k1", k)
		}
	}
	t.Logf("%d pushes while running", before)
}

// TestMetricsOTLPPushAtStop: with an interval longer than the test, the
// pushes are the two wattd makes as it stops: one as the shutdown begins,
// with the workers' figures of the last interval, and one as it exits,
// with its own; so a runtime's last interval is not lost.
func TestMetricsOTLPPushAtStop(t *testing.T) {
	integration(t)
	recv := newOTLPMetricsReceiver(t)
	port, mport := freePort(t), freePort(t)
	dir := metricsProject(t, map[string]any{
		"hostname": "127.0.0.1", "port": mport,
		"otlpExporter": map[string]any{"endpoint": recv.URL + "/v1/metrics", "serviceName": "shop", "serviceVersion": "2.0.0"},
	}, map[string]any{"id": "web", "path": fixture("apps/plain")})
	d := startWattd(t, dir, port, startOpts{})
	d.waitReady("web", 30*time.Second)
	// The worker's heap reaches wattd with its first stats report.
	waitFor(t, 10*time.Second, "the worker's first stats report", func() bool {
		fams, err := scrape(fmt.Sprintf("http://127.0.0.1:%d/metrics", mport), "", "")
		return err == nil && fams["nodejs_heap_size_used_bytes"] != nil
	})
	if recv.last() != nil {
		t.Fatal("a push before the first interval (60 s) ended")
	}
	d.signal(syscall.SIGTERM)
	if code := d.wait(30 * time.Second); code != 0 {
		t.Fatalf("wattd exited %d", code)
	}
	recv.mu.Lock()
	got := slices.Clone(recv.got)
	recv.mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("%d pushes as wattd stopped, want 2", len(got))
	}
	if byService(got[0])["shop"]["nodejs_heap_size_used_bytes"] == nil {
		t.Errorf("the push as the shutdown began has no worker heap: %v", slices.Sorted(maps.Keys(byService(got[0])["shop"])))
	}
	req := recv.last()
	if len(req.GetResourceMetrics()) != 1 {
		t.Fatalf("%d resources with serviceName set, want 1", len(req.GetResourceMetrics()))
	}
	attrs := map[string]string{}
	for _, kv := range req.GetResourceMetrics()[0].GetResource().GetAttributes() {
		attrs[kv.GetKey()] = kv.GetValue().GetStringValue()
	}
	if attrs["service.name"] != "shop" || attrs["service.version"] != "2.0.0" {
		t.Errorf("resource %v, want service.name shop, service.version 2.0.0", attrs)
	}
	if byService(req)["shop"]["wattd_worker_restarts_total"] == nil {
		t.Errorf("the last push has no wattd_worker_restarts_total: %v", req)
	}
}
