package metrics

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/wattd/wattd/supervisor/config"
)

// otlpRegistry has what the endpoint has, in small: per-application
// counters, gauges, histograms and summaries, and a series of the runtime's
// own without the application label.
type otlpRegistry struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	heap     *prometheus.GaugeVec
	latency  *prometheus.HistogramVec
	lag      *prometheus.SummaryVec
	dropped  prometheus.Counter
}

func newOTLPRegistry(appLabel string) *otlpRegistry {
	r := &otlpRegistry{reg: prometheus.NewPedanticRegistry()}
	labels := []string{appLabel, "workerId"}
	r.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "requests_total", Help: "Requests."}, labels)
	r.heap = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "heap_bytes", Help: "Heap."}, labels)
	r.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "latency_seconds", Help: "Latency.", Buckets: []float64{0.1, 1}}, labels)
	r.lag = prometheus.NewSummaryVec(prometheus.SummaryOpts{Name: "lag_seconds", Help: "Lag.", Objectives: map[float64]float64{0.5: 0.01}}, labels)
	r.dropped = prometheus.NewCounter(prometheus.CounterOpts{Name: "dropped_total", Help: "Dropped."})
	r.reg.MustRegister(r.requests, r.heap, r.latency, r.lag, r.dropped)
	return r
}

// resourceMetrics indexes a request: service.name -> metric name -> metric.
func resourceMetrics(t *testing.T, req *colmetricspb.ExportMetricsServiceRequest) (map[string]map[string]*metricspb.Metric, map[string]map[string]string) {
	t.Helper()
	out := map[string]map[string]*metricspb.Metric{}
	attrs := map[string]map[string]string{}
	for _, rm := range req.GetResourceMetrics() {
		ra := map[string]string{}
		for _, kv := range rm.GetResource().GetAttributes() {
			ra[kv.GetKey()] = kv.GetValue().GetStringValue()
		}
		name := ra["service.name"]
		if out[name] != nil {
			t.Fatalf("two resources named %q", name)
		}
		out[name], attrs[name] = map[string]*metricspb.Metric{}, ra
		for _, sm := range rm.GetScopeMetrics() {
			if sm.GetScope().GetName() != name || sm.GetScope().GetVersion() != ra["service.version"] {
				t.Errorf("scope %q %q, want the service's name and version, as Watt's", sm.GetScope().GetName(), sm.GetScope().GetVersion())
			}
			for _, m := range sm.GetMetrics() {
				out[name][m.GetName()] = m
			}
		}
	}
	return out, attrs
}

// TestOTLPConversion: one resource per application and one for the
// runtime's own series; every label an attribute; counters monotonic
// cumulative sums, gauges gauges, histograms with per-bucket counts and
// summaries with their quantiles; cumulative series start when the
// converter did, a series that appears later at the request before, and a
// series whose value fell (a replaced worker) at the request before too.
func TestOTLPConversion(t *testing.T) {
	r := newOTLPRegistry("serviceId")
	r.requests.WithLabelValues("web", "0").Add(5)
	r.requests.WithLabelValues("api", "0").Add(2)
	r.heap.WithLabelValues("web", "0").Set(1024)
	for _, v := range []float64{0.05, 0.5, 0.5, 5} {
		r.latency.WithLabelValues("web", "0").Observe(v)
	}
	r.lag.WithLabelValues("api", "0").Observe(0.02)
	r.dropped.Add(3)

	t0 := time.Unix(1000, 0)
	c := newOTLPConverter("serviceId", "", "", t0)
	fams, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	t1 := t0.Add(time.Minute)
	res, _ := resourceMetrics(t, c.request(fams, t1))
	if names := slices.Sorted(maps.Keys(res)); !slices.Equal(names, []string{"api", "wattd", "web"}) {
		t.Fatalf("resources %v, want api, wattd (the runtime's own series), web", names)
	}

	sum := res["web"]["requests_total"].GetSum()
	if sum == nil || !sum.GetIsMonotonic() || sum.GetAggregationTemporality() != metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE {
		t.Fatalf("requests_total of web: %v, want a monotonic cumulative sum", res["web"]["requests_total"])
	}
	dp := sum.GetDataPoints()[0]
	got := map[string]string{}
	for _, kv := range dp.GetAttributes() {
		got[kv.GetKey()] = kv.GetValue().GetStringValue()
	}
	if got["serviceId"] != "web" || got["workerId"] != "0" || len(got) != 2 {
		t.Errorf("attributes %v, want serviceId=web workerId=0", got)
	}
	if dp.GetAsDouble() != 5 || dp.GetStartTimeUnixNano() != uint64(t0.UnixNano()) || dp.GetTimeUnixNano() != uint64(t1.UnixNano()) {
		t.Errorf("requests_total point %v, want 5 from t0 to t1", dp)
	}
	if g := res["web"]["heap_bytes"].GetGauge(); g == nil || g.GetDataPoints()[0].GetAsDouble() != 1024 {
		t.Errorf("heap_bytes: %v, want a gauge of 1024", res["web"]["heap_bytes"])
	}
	if res["web"]["heap_bytes"].GetDescription() != "Heap." {
		t.Errorf("description %q, want the help text", res["web"]["heap_bytes"].GetDescription())
	}
	h := res["web"]["latency_seconds"].GetHistogram()
	if h == nil || h.GetAggregationTemporality() != metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE {
		t.Fatalf("latency_seconds: %v, want a cumulative histogram", res["web"]["latency_seconds"])
	}
	hp := h.GetDataPoints()[0]
	if !slices.Equal(hp.GetExplicitBounds(), []float64{0.1, 1}) || !slices.Equal(hp.GetBucketCounts(), []uint64{1, 2, 1}) ||
		hp.GetCount() != 4 || hp.GetSum() != 6.05 {
		t.Errorf("histogram point bounds %v counts %v count %d sum %v; want [0.1 1], [1 2 1], 4, 6.05",
			hp.GetExplicitBounds(), hp.GetBucketCounts(), hp.GetCount(), hp.GetSum())
	}
	s := res["api"]["lag_seconds"].GetSummary()
	if s == nil || s.GetDataPoints()[0].GetCount() != 1 || len(s.GetDataPoints()[0].GetQuantileValues()) != 1 ||
		s.GetDataPoints()[0].GetQuantileValues()[0].GetQuantile() != 0.5 {
		t.Errorf("lag_seconds: %v, want a summary of one observation with its median", res["api"]["lag_seconds"])
	}
	if d := res["wattd"]["dropped_total"].GetSum(); d == nil || d.GetDataPoints()[0].GetAsDouble() != 3 {
		t.Errorf("dropped_total of the runtime: %v", res["wattd"]["dropped_total"])
	}
	if res["web"]["lag_seconds"] != nil {
		t.Errorf("web has api's lag_seconds")
	}

	// The next request: web's worker was replaced (its counter starts
	// over), api's counter went on, and a worker 1 of api appeared.
	r2 := newOTLPRegistry("serviceId")
	r2.requests.WithLabelValues("web", "0").Add(1)
	r2.requests.WithLabelValues("api", "0").Add(4)
	r2.requests.WithLabelValues("api", "1").Add(1)
	fams, _ = r2.reg.Gather()
	t2 := t1.Add(time.Minute)
	res, _ = resourceMetrics(t, c.request(fams, t2))
	starts := map[string]uint64{}
	for _, app := range []string{"web", "api"} {
		for _, dp := range res[app]["requests_total"].GetSum().GetDataPoints() {
			w := ""
			for _, kv := range dp.GetAttributes() {
				if kv.GetKey() == "workerId" {
					w = kv.GetValue().GetStringValue()
				}
			}
			starts[app+"/"+w] = dp.GetStartTimeUnixNano()
		}
	}
	want := map[string]uint64{"web/0": uint64(t1.UnixNano()), "api/0": uint64(t0.UnixNano()), "api/1": uint64(t1.UnixNano())}
	for k, v := range want {
		if starts[k] != v {
			t.Errorf("start of %s: %d, want %d (t0 %d, t1 %d)", k, starts[k], v, t0.UnixNano(), t1.UnixNano())
		}
	}

	// serviceName and serviceVersion name every resource alike.
	c = newOTLPConverter("serviceId", "shop", "1.2.3", t0)
	res, attrs := resourceMetrics(t, c.request(fams, t1))
	if len(res) != 1 || attrs["shop"]["service.version"] != "1.2.3" {
		t.Errorf("with serviceName: resources %v, attributes %v; want one, shop, version 1.2.3", slices.Sorted(maps.Keys(res)), attrs)
	}
}

// TestOTLPPusher pushes to a collector in the test: protobuf with the
// configured headers at every interval and once more at Close; a collector
// that fails gets one warning, not one per interval, and one line when the
// pushes go through again.
func TestOTLPPusher(t *testing.T) {
	var mu sync.Mutex
	var got []*colmetricspb.ExportMetricsServiceRequest
	failing := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != "/v1/metrics" || r.Header.Get("Content-Type") != "application/x-protobuf" || r.Header.Get("X-Api-Key") != "k1" {
			t.Errorf("push to %s with %v", r.URL.Path, r.Header)
		}
		if failing {
			http.Error(w, "not now", http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		req := &colmetricspb.ExportMetricsServiceRequest{}
		if err := proto.Unmarshal(b, req); err != nil {
			t.Errorf("body: %v", err)
		}
		got = append(got, req)
	}))
	defer srv.Close()
	r := newOTLPRegistry(config.DefaultAppLabel)
	r.requests.WithLabelValues("web", "0").Inc()
	core, logs := observer.New(zap.DebugLevel)
	p := startOTLP(config.OTLPMetrics{Endpoint: srv.URL + "/v1/metrics", Interval: 50 * time.Millisecond,
		Headers: map[string]string{"x-api-key": "k1"}}, config.DefaultAppLabel, r.reg, zap.New(core))
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	deadline := time.Now().Add(10 * time.Second)
	for logs.FilterMessageSnippet("cannot push").Len() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	failing = false
	mu.Unlock()
	for count() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	p.Close()
	n := count()
	if n < 2 {
		t.Fatalf("%d pushes went through", n)
	}
	if w := logs.FilterLevelExact(zap.WarnLevel).FilterMessageSnippet("cannot push").Len(); w != 1 {
		t.Errorf("%d warnings for a failing collector, want 1", w)
	}
	if logs.FilterMessage("pushing metrics over OTLP again").Len() != 1 {
		t.Errorf("no line when the pushes went through again: %v", logs.All())
	}
	res, _ := resourceMetrics(t, got[n-1])
	if res["web"]["requests_total"] == nil {
		t.Errorf("last push: %v", got[n-1])
	}

	// With an interval longer than the test, the one push is Close's.
	r.requests.WithLabelValues("web", "0").Inc()
	p = startOTLP(config.OTLPMetrics{Endpoint: srv.URL + "/v1/metrics", Interval: time.Hour,
		Headers: map[string]string{"x-api-key": "k1"}}, config.DefaultAppLabel, r.reg, zap.NewNop())
	p.Close()
	if count() != n+1 {
		t.Fatalf("%d pushes at Close, want 1", count()-n)
	}
	res, _ = resourceMetrics(t, got[n])
	if v := res["web"]["requests_total"].GetSum().GetDataPoints()[0].GetAsDouble(); v != 2 {
		t.Errorf("Close pushed requests_total %v, want 2", v)
	}
}

// TestOTLPPusherHungCollector: a collector that takes a push and never
// answers holds up Close (and so wattd's exit) for the last push's 2 s at
// most, not for the 10 s a push may otherwise take.
func TestOTLPPusherHungCollector(t *testing.T) {
	took := make(chan struct{}, 100)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		took <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	r := newOTLPRegistry(config.DefaultAppLabel)
	// A long interval gives each push the full 10 s; the push is asked
	// for, as the runtime's shutdown asks for one.
	p := startOTLP(config.OTLPMetrics{Endpoint: srv.URL, Interval: time.Minute}, config.DefaultAppLabel, r.reg, zap.NewNop())
	p.kick <- struct{}{}
	select {
	case <-took:
	case <-time.After(10 * time.Second):
		t.Fatal("no push reached the collector")
	}
	start := time.Now()
	p.Close()
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("Close took %v with a collector that does not answer, want about 2 s", d)
	}
}

// TestOTLPEndpointPasswordNotLogged: an endpoint with credentials in it
// is logged without the password.
func TestOTLPEndpointPasswordNotLogged(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	r := newOTLPRegistry(config.DefaultAppLabel)
	p := startOTLP(config.OTLPMetrics{Endpoint: "http://user:s3cret@127.0.0.1:1/v1/metrics", Interval: time.Hour},
		config.DefaultAppLabel, r.reg, zap.New(core))
	p.Close()
	for _, e := range logs.All() {
		for _, f := range e.Context {
			if strings.Contains(f.String, "s3cret") || strings.Contains(fmt.Sprint(f.Interface), "s3cret") {
				t.Errorf("log line %q has the password in %s", e.Message, f.Key)
			}
		}
	}
	if logs.Len() == 0 {
		t.Fatal("nothing logged")
	}
}

// TestOTLPSummaryWithoutObservations: a summary series with no
// observations has NaN quantiles, which OTLP/JSON cannot carry and which
// collectors reject or turn into garbage: a push leaves those quantiles out
// and keeps the count and sum; quantiles of series with observations stay.
func TestOTLPSummaryWithoutObservations(t *testing.T) {
	var mu sync.Mutex
	var got []*colmetricspb.ExportMetricsServiceRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		req := &colmetricspb.ExportMetricsServiceRequest{}
		if err := proto.Unmarshal(b, req); err != nil {
			t.Errorf("body: %v", err)
		}
		mu.Lock()
		got = append(got, req)
		mu.Unlock()
	}))
	defer srv.Close()
	r := newOTLPRegistry(config.DefaultAppLabel)
	r.lag.WithLabelValues("web", "0")
	r.lag.WithLabelValues("web", "1").Observe(0.25)
	p := startOTLP(config.OTLPMetrics{Endpoint: srv.URL + "/v1/metrics", Interval: time.Hour}, config.DefaultAppLabel, r.reg, zap.NewNop())
	p.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("%d pushes, want 1", len(got))
	}
	res, _ := resourceMetrics(t, got[0])
	points := map[string]*metricspb.SummaryDataPoint{}
	for _, dp := range res["web"]["lag_seconds"].GetSummary().GetDataPoints() {
		for _, kv := range dp.GetAttributes() {
			if kv.GetKey() == "workerId" {
				points[kv.GetValue().GetStringValue()] = dp
			}
		}
	}
	if dp := points["0"]; dp == nil || dp.GetCount() != 0 || dp.GetSum() != 0 || len(dp.GetQuantileValues()) != 0 {
		t.Errorf("summary without observations: %v, want count and sum 0 and no quantiles", dp)
	}
	if dp := points["1"]; dp == nil || dp.GetCount() != 1 || len(dp.GetQuantileValues()) != 1 || dp.GetQuantileValues()[0].GetValue() != 0.25 {
		t.Errorf("summary with an observation: %v, want its 0.5 quantile 0.25", dp)
	}
	js, err := protojson.Marshal(got[0])
	if err != nil || strings.Contains(string(js), "NaN") {
		t.Errorf("as OTLP/JSON: %v\n%s", err, js)
	}
}
