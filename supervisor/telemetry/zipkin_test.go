package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/openzipkin/zipkin-go/model"
	"go.opentelemetry.io/otel/attribute"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/config"
)

// zipkinReceiver is a Zipkin collector's span API: it decodes every POST
// with Zipkin's own span model and keeps the spans, or answers status.
type zipkinReceiver struct {
	mu      sync.Mutex
	spans   []model.SpanModel
	posts   int
	headers []http.Header
	status  int // when not 0, every POST gets it
	refused int // POSTs answered with status
	errs    []string
}

func (z *zipkinReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/api/v2/spans" || r.Header.Get("Content-Type") != "application/json" {
		z.errs = append(z.errs, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
		http.Error(w, "not the span API", http.StatusNotFound)
		return
	}
	if z.status != 0 {
		z.refused++
		http.Error(w, "collector says no", z.status)
		return
	}
	var spans []model.SpanModel
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &spans); err != nil {
		z.errs = append(z.errs, err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	z.posts++
	z.headers = append(z.headers, r.Header.Clone())
	z.spans = append(z.spans, spans...)
	w.WriteHeader(http.StatusAccepted)
}

func (z *zipkinReceiver) got() ([]model.SpanModel, int, []string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	return append([]model.SpanModel(nil), z.spans...), z.posts, append([]string(nil), z.errs...)
}

// TestZipkinExporter runs a pipeline with a zipkin exporter, as watt.json
// configures it, and checks what a Zipkin collector receives: ids, parent,
// kinds, times, the service of each application, tags from the attributes,
// the resource and the status, and the remote service of a mesh call.
func TestZipkinExporter(t *testing.T) {
	recv := &zipkinReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	core, logs := observer.New(zap.InfoLevel)
	p, err := New(Options{
		Config: config.Telemetry{Enabled: true, ApplicationName: "shop", Version: "2", Exporters: []config.Exporter{{
			Type: config.ExporterZipkin, URL: srv.URL + "/api/v2/spans", Headers: map[string]string{"X-Tenant": "t1"}, Pointer: "/telemetry/exporter",
		}}},
		Logger:   zap.New(core),
		Interval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, e := range logs.All() {
			t.Logf("wattd log: %s %v", e.Message, e.ContextMap())
		}
	}()
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	p.Source("gateway", 1, 4242).Ingest(json.RawMessage(`[
		{"traceId":"` + trace + `","spanId":"00f067aa0ba902b7","name":"GET /orders","kind":"server","startMs":1764672000000,"endMs":1764672000012.5,
		 "attributes":{"http.request.method":"GET","http.response.status_code":502,"retried":true,"ratio":0.25},
		 "status":"error","statusMessage":"upstream failed"},
		{"traceId":"` + trace + `","spanId":"00f067aa0ba902b8","parentSpanId":"00f067aa0ba902b7","name":"GET","kind":"client","startMs":1764672000001,"endMs":1764672000011,
		 "attributes":{"server.address":"orders.plt.local","server.port":80}},
		{"traceId":"` + trace + `","spanId":"00f067aa0ba902b9","parentSpanId":"00f067aa0ba902b7","name":"GET","kind":"client","startMs":1764672000002,"endMs":1764672000003,
		 "attributes":{"server.address":"10.1.2.3","server.port":8443}}
	]`))
	p.Source("orders", 0, 4343).Ingest(json.RawMessage(`[
		{"traceId":"` + trace + `","spanId":"1000000000000001","parentSpanId":"00f067aa0ba902b8","name":"GET /","kind":"server","startMs":1764672000002,"endMs":1764672000010}
	]`))
	waitUntil(t, "4 spans at the collector", func() bool {
		s, _, errs := recv.got()
		if len(errs) > 0 {
			t.Fatalf("the collector refused posts: %q", errs)
		}
		return len(s) >= 4
	})
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans, _, errs := recv.got()
	if len(errs) > 0 {
		t.Fatalf("the collector refused posts: %q", errs)
	}
	if len(spans) != 4 {
		t.Fatalf("%d spans, want 4", len(spans))
	}
	byID := map[string]model.SpanModel{}
	for _, s := range spans {
		byID[s.ID.String()] = s
		if s.TraceID.String() != trace {
			t.Errorf("span %s: trace id %s, want %s", s.ID, s.TraceID, trace)
		}
	}
	root, call, ext, orders := byID["00f067aa0ba902b7"], byID["00f067aa0ba902b8"], byID["00f067aa0ba902b9"], byID["1000000000000001"]
	if root.ParentID != nil || call.ParentID == nil || *call.ParentID != root.ID || orders.ParentID == nil || *orders.ParentID != call.ID {
		t.Errorf("parents: root %v, call %v, orders %v", root.ParentID, call.ParentID, orders.ParentID)
	}
	if root.Kind != model.Server || call.Kind != model.Client || orders.Kind != model.Server {
		t.Errorf("kinds: %s %s %s", root.Kind, call.Kind, orders.Kind)
	}
	if want := time.UnixMilli(1764672000000); !root.Timestamp.Equal(want) || root.Duration != 12500*time.Microsecond {
		t.Errorf("root at %v for %v, want %v for 12.5ms", root.Timestamp, root.Duration, want)
	}
	if root.LocalEndpoint == nil || root.LocalEndpoint.ServiceName != "shop-gateway" || orders.LocalEndpoint == nil || orders.LocalEndpoint.ServiceName != "shop-orders" {
		t.Errorf("local endpoints %+v, %+v", root.LocalEndpoint, orders.LocalEndpoint)
	}
	for k, v := range map[string]string{
		"http.request.method": "GET", "http.response.status_code": "502", "retried": "true", "ratio": "0.25",
		"otel.status_code": "ERROR", "error": "upstream failed",
		AttrApplicationID: "gateway", AttrWorkerID: "1", AttrProcessPID: "4242", "service.version": "2",
		"otel.scope.name": Scope.Name,
	} {
		if root.Tags[k] != v {
			t.Errorf("root tag %s = %q, want %q (all: %v)", k, root.Tags[k], v, root.Tags)
		}
	}
	if _, ok := root.Tags["service.name"]; ok {
		t.Errorf("service.name is a tag too: %v", root.Tags)
	}
	if _, ok := call.Tags["error"]; ok {
		t.Errorf("a span without an error status has an error tag: %v", call.Tags)
	}
	if call.RemoteEndpoint == nil || call.RemoteEndpoint.ServiceName != "shop-orders" || call.RemoteEndpoint.Port != 80 {
		t.Errorf("mesh call's remote endpoint %+v, want service shop-orders port 80", call.RemoteEndpoint)
	}
	if ext.RemoteEndpoint == nil || ext.RemoteEndpoint.IPv4.String() != "10.1.2.3" || ext.RemoteEndpoint.Port != 8443 {
		t.Errorf("remote endpoint %+v, want 10.1.2.3:8443", ext.RemoteEndpoint)
	}
	if root.RemoteEndpoint != nil {
		t.Errorf("server span with a remote endpoint %+v", root.RemoteEndpoint)
	}
	recv.mu.Lock()
	for _, h := range recv.headers {
		if h.Get("X-Tenant") != "t1" {
			t.Errorf("post without the configured header: %v", h)
		}
	}
	recv.mu.Unlock()
}

// TestZipkinExporterSplitsAndReportsRefusals: a large batch goes out in
// posts of at most zipkinPostSpans, and a collector's refusal is an
// export error that names its status and answer, logged by the pipeline.
func TestZipkinExporterSplitsAndReportsRefusals(t *testing.T) {
	recv := &zipkinReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	e := newZipkinExporter(srv.URL+"/api/v2/spans", nil, nil)
	retryCore, retries := observer.New(zap.InfoLevel)
	e.diag = zap.New(retryCore) // as with diagLogger
	var b batch
	p := &Pipeline{cfg: config.Telemetry{Enabled: true}, log: zap.NewNop(), counts: map[string]*AppCounts{}}
	b.src = p.Source("api", 0, 1)
	decoded, dropped, err := ipc.DecodeSpans(spansJSON(zipkinPostSpans+7, "4bf92f3577b34da6a3ce929d0e0e4736"))
	if err != nil || dropped != 0 {
		t.Fatal(dropped, err)
	}
	b.pb = spansFromJSON(decoded)
	if err := e.export(context.Background(), []batch{b}); err != nil {
		t.Fatal(err)
	}
	got, posts, _ := recv.got()
	if len(got) != zipkinPostSpans+7 || posts != 2 {
		t.Errorf("%d spans in %d posts, want %d in 2", len(got), posts, zipkinPostSpans+7)
	}

	// A collector that says it is busy is tried again until the export's
	// deadline; one that refuses the spans is not.
	for _, c := range []struct {
		status int
		tries  func(int) bool
	}{
		{http.StatusTooManyRequests, func(n int) bool { return n >= 3 }},
		{http.StatusBadRequest, func(n int) bool { return n == 1 }},
	} {
		recv.mu.Lock()
		recv.status, recv.refused = c.status, 0
		recv.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 1200*time.Millisecond)
		err = e.export(ctx, []batch{b})
		cancel()
		recv.mu.Lock()
		refused := recv.refused
		recv.mu.Unlock()
		if err == nil || !strings.Contains(err.Error(), strconv.Itoa(c.status)) || !strings.Contains(err.Error(), "collector says no") {
			t.Errorf("refused export (%d): error %v, want the status and the answer", c.status, err)
		}
		if !c.tries(refused) {
			t.Errorf("status %d: %d posts in 1.2 s", c.status, refused)
		}
		if n := retries.TakeAll(); len(n) != refused-1 && !(len(n) == refused && refused > 1) {
			t.Errorf("status %d: %d retry lines for %d posts", c.status, len(n), refused)
		}
	}
	recv.mu.Lock()
	recv.status = http.StatusTooManyRequests
	recv.mu.Unlock()

	// Through the pipeline, the refusal reaches wattd's log.
	core, logs := observer.New(zap.WarnLevel)
	pl, err := New(Options{
		Config:        config.Telemetry{Enabled: true, Exporters: []config.Exporter{{Type: config.ExporterZipkin, URL: srv.URL + "/api/v2/spans"}}},
		Logger:        zap.New(core),
		Interval:      20 * time.Millisecond,
		ExportTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	pl.Source("api", 0, 1).Ingest(spansJSON(3, "4bf92f3577b34da6a3ce929d0e0e4736"))
	waitUntil(t, "the refusal logged", func() bool {
		for _, e := range logs.All() {
			if msg, _ := e.ContextMap()["error"].(string); strings.Contains(msg, "429") {
				return true
			}
		}
		return false
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = pl.Shutdown(ctx)
}

// TestZipkinTagValue: a Zipkin tag is a string; lists are JSON lists.
func TestZipkinTagValue(t *testing.T) {
	for _, tt := range []struct {
		v    attribute.Value
		want string
	}{
		{attribute.StringValue("a b"), "a b"},
		{attribute.BoolValue(false), "false"},
		{attribute.Int64Value(-3), "-3"},
		{attribute.Float64Value(1e-7), "1e-07"},
		{attribute.StringSliceValue([]string{"a", "b\"c"}), `["a","b\"c"]`},
		{attribute.Int64SliceValue([]int64{1, 2}), "[1,2]"},
		{attribute.BoolSliceValue([]bool{true}), "[true]"},
	} {
		if got := tagValue(tt.v); got != tt.want {
			t.Errorf("tagValue(%v) = %q, want %q", tt.v.AsInterface(), got, tt.want)
		}
	}
}

// TestDiagLogger: with watt.json's diagLogger, every export is a line of
// wattd's log, and the OpenTelemetry SDK's own diagnostics (logr, by
// verbosity) become wattd's warn, info and debug lines.
func TestDiagLogger(t *testing.T) {
	recv := &zipkinReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	core, logs := observer.New(zap.DebugLevel)
	for _, diag := range []bool{false, true} {
		p, err := New(Options{
			Config: config.Telemetry{Enabled: true, DiagLogger: diag,
				Exporters: []config.Exporter{{Type: config.ExporterZipkin, URL: srv.URL + "/api/v2/spans"}}},
			Logger:   zap.New(core),
			Interval: 20 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		p.Source("api", 0, 1).Ingest(spansJSON(3, "4bf92f3577b34da6a3ce929d0e0e4736"))
		waitUntil(t, "the spans at the collector", func() bool { s, _, _ := recv.got(); return len(s) == 3*(map[bool]int{false: 1, true: 2}[diag]) })
		if err := p.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		lines := logs.FilterMessage("spans exported").All()
		if diag && (len(lines) != 1 || lines[0].ContextMap()["spans"] != int64(3)) || !diag && len(lines) != 0 {
			t.Errorf("diagLogger %v: export lines %v", diag, lines)
		}
	}

	core, logs = observer.New(zap.InfoLevel)
	l := logr.New(diagSink{zap.New(core)}).WithName("exporter").WithValues("a", 1)
	l.V(1).Info("slow collector", "ms", 12)
	l.V(4).Info("export done")
	l.V(8).Info("every detail") // debug: below this log's level
	l.Error(errors.New("refused"), "export failed", "odd")
	got := map[string]zapcore.Level{}
	for _, e := range logs.All() {
		got[e.Message] = e.Level
		if e.LoggerName != "exporter" || e.ContextMap()["a"] != int64(1) {
			t.Errorf("line %q: logger %q, fields %v", e.Message, e.LoggerName, e.ContextMap())
		}
	}
	want := map[string]zapcore.Level{"slow collector": zapcore.WarnLevel, "export done": zapcore.InfoLevel, "export failed": zapcore.ErrorLevel}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("levels %v, want %v", got, want)
	}
	if l.V(8).Enabled() || !l.V(4).Enabled() {
		t.Errorf("enabled: V(8) %v, V(4) %v at info", l.V(8).Enabled(), l.V(4).Enabled())
	}
}
