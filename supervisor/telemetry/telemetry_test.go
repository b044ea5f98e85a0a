package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/proto"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/config"
)

// recorder is an exporter that keeps what it is given, and blocks while
// gate is closed over.
type recorder struct {
	mu    sync.Mutex
	spans []sdktrace.ReadOnlySpan
	calls int
	gate  chan struct{} // when not nil, each export waits for it to close (or its context)
	err   error
}

func (r *recorder) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.err != nil {
		return r.err
	}
	r.spans = append(r.spans, spans...)
	return nil
}

func (r *recorder) Shutdown(context.Context) error { return nil }

func (r *recorder) count() (spans, calls int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.spans), r.calls
}

// pipelineWith runs a pipeline over the given exporter, as New would.
func pipelineWith(exp sdktrace.SpanExporter, log *zap.Logger, queue, size int) *Pipeline {
	return pipelineEvery(exp, log, queue, size, 20*time.Millisecond)
}

func pipelineEvery(exp sdktrace.SpanExporter, log *zap.Logger, queue, size int, interval time.Duration) *Pipeline {
	p := &Pipeline{cfg: config.Telemetry{Enabled: true, ApplicationName: "shop", Version: "2"}, log: log, counts: map[string]*AppCounts{}}
	s := &sink{
		name: "test", log: log, exp: sdkExporter{exp}, queue: make(chan batch, queue), limit: int64(queue), memLimit: DefaultQueueBytes,
		stop: make(chan struct{}), done: make(chan struct{}), batch: size, interval: interval, timeout: 5 * time.Second,
	}
	p.sinks = append(p.sinks, s)
	go s.run()
	return p
}

func spansJSON(n int, traceID string) json.RawMessage {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf(`{"traceId":%q,"spanId":"%016x","name":"s%d","kind":"internal","startMs":1764672000000,"endMs":1764672000001}`, traceID, i+1, i)
	}
	return json.RawMessage("[" + strings.Join(items, ",") + "]")
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestIngestResource(t *testing.T) {
	rec := &recorder{}
	p := pipelineWith(rec, zap.NewNop(), 16, 4)
	defer p.Shutdown(context.Background())
	p.Source("api", 1, 4242).Ingest(spansJSON(5, "4bf92f3577b34da6a3ce929d0e0e4736"))
	waitUntil(t, "5 spans exported", func() bool { n, _ := rec.count(); return n == 5 })
	if _, calls := rec.count(); calls != 2 {
		t.Errorf("%d exports of 5 spans in batches of 4, want 2", calls)
	}
	got := map[string]string{}
	for _, kv := range rec.spans[0].Resource().Attributes() {
		got[string(kv.Key)] = kv.Value.Emit()
	}
	for k, v := range map[string]string{"service.name": "shop-api", "service.version": "2", AttrApplicationID: "api", AttrWorkerID: "1", AttrProcessPID: "4242"} {
		if got[k] != v {
			t.Errorf("resource %s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if c := p.Counts()["api"]; c != (Counts{Received: 5}) {
		t.Errorf("counts %+v", c)
	}
}

// TestIngestNeverBlocks: with the exporter stuck, spans beyond the queue
// are dropped and counted at once instead of holding up the caller (a
// control channel's reader), and the drop is said once, not per batch.
func TestIngestNeverBlocks(t *testing.T) {
	rec := &recorder{gate: make(chan struct{})}
	core, logged := observer.New(zap.WarnLevel)
	p := pipelineWith(rec, zap.New(core), 25, 4)
	src := p.Source("api", 0, 1)
	start := time.Now()
	for range 10 {
		src.Ingest(spansJSON(10, "4bf92f3577b34da6a3ce929d0e0e4736"))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("ingesting 100 spans into a stuck pipeline took %v", d)
	}
	c := p.Counts()["api"]
	// The queue takes two messages of 10 (25 spans at most); the sink may
	// hold one more, stuck in its export. A message that does not fit is
	// dropped whole.
	if c.Received != 100 || c.QueueFull < 100-30 || c.QueueFull > 100-20 {
		t.Errorf("counts %+v: want 100 received and 70 to 80 dropped for a full queue", c)
	}
	if n := logged.FilterMessage("an exporter's queue is full; spans are dropped").Len(); n != 1 {
		t.Errorf("%d warnings of the full queue, want 1: %v", n, logged.All())
	}
	close(rec.gate)
	waitUntil(t, "the queued spans exported", func() bool { n, _ := rec.count(); return uint64(n) == 100-c.QueueFull })
	p.Shutdown(context.Background())
}

// TestShutdownFlushesWithinDeadline: queued spans are exported on
// shutdown; an exporter that does not answer cannot hold it past its
// deadline.
func TestShutdownFlushesWithinDeadline(t *testing.T) {
	rec := &recorder{}
	p := pipelineEvery(rec, zap.NewNop(), 64, 512, time.Hour) // only shutdown can flush
	p.Source("api", 0, 1).Ingest(spansJSON(7, "4bf92f3577b34da6a3ce929d0e0e4736"))
	waitUntil(t, "the spans in the sink", func() bool { return len(p.sinks[0].queue) == 0 })
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, _ := rec.count(); n != 7 {
		t.Errorf("%d spans exported on shutdown, want 7", n)
	}
	p.Source("api", 0, 1).Ingest(spansJSON(1, "4bf92f3577b34da6a3ce929d0e0e4736")) // after shutdown: dropped, no panic

	stuck := &recorder{gate: make(chan struct{})}
	p = pipelineWith(stuck, zap.NewNop(), 64, 512)
	p.Source("api", 0, 1).Ingest(spansJSON(3, "4bf92f3577b34da6a3ce929d0e0e4736"))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := p.Shutdown(ctx)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("shutdown with a stuck exporter took %v, deadline 200ms", d)
	}
	// wattd logs this error: spans lost at stop are not lost silently.
	if err == nil || !strings.Contains(err.Error(), "still exporting at the deadline") || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("shutdown with a stuck exporter: error %v", err)
	}
}

// TestExportErrorsLoggedRateLimited: an exporter that keeps failing is
// logged once per interval, not once per batch, and invalid spans once
// per worker.
func TestExportErrorsLoggedRateLimited(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	rec := &recorder{err: errors.New("collector down")}
	p := pipelineWith(rec, zap.New(core), 64, 1)
	defer p.Shutdown(context.Background())
	src := p.Source("api", 0, 1)
	src.Ingest(spansJSON(10, "4bf92f3577b34da6a3ce929d0e0e4736"))
	waitUntil(t, "10 failed exports", func() bool { _, calls := rec.count(); return calls == 10 })
	if n := logs.FilterMessage("could not export spans; they are dropped").Len(); n != 1 {
		t.Errorf("%d export failure logs for 10 failures, want 1", n)
	}
	for range 5 {
		src.Ingest(json.RawMessage(`[{"traceId":"bad"}]`))
	}
	if n := logs.FilterMessage("worker sent invalid spans; they are dropped").Len(); n != 1 {
		t.Errorf("%d invalid span warnings for 5 messages, want 1", n)
	}
	if c := p.Counts()["api"]; c.Invalid != 5 || c.Received != 15 || c.ExportFailed != 10 {
		t.Errorf("counts %+v, want 5 invalid, 15 received and the 10 valid ones failed to export", c)
	}
}

// TestFileExporter: the file exporter appends one JSON object per span.
func TestFileExporter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spans.log")
	p, err := New(Options{Config: config.Telemetry{Enabled: true, Exporters: []config.Exporter{{Type: config.ExporterFile, Path: path}}}, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p.Source("api", 0, 1).Ingest(spansJSON(3, "4bf92f3577b34da6a3ce929d0e0e4736"))
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), data)
	}
	for _, l := range lines {
		var s struct {
			Name        string
			SpanContext struct{ TraceID string }
		}
		if err := json.Unmarshal([]byte(l), &s); err != nil || s.SpanContext.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("line %q: %+v %v", l, s, err)
		}
	}
}

func TestNewOffAndNil(t *testing.T) {
	p, err := New(Options{Config: config.Telemetry{Enabled: false}})
	if p != nil || err != nil {
		t.Fatalf("tracing off: %v %v", p, err)
	}
	p.Source("a", 0, 1).Ingest(spansJSON(1, "4bf92f3577b34da6a3ce929d0e0e4736"))
	if p.Counts() != nil || p.Shutdown(context.Background()) != nil {
		t.Error("a nil pipeline should do nothing")
	}
	if _, err := New(Options{Config: config.Telemetry{Enabled: true, Exporters: []config.Exporter{{Type: config.ExporterFile, Path: "/nonexistent/dir/spans.log", Pointer: "/telemetry/exporter"}}}}); err == nil ||
		!strings.Contains(err.Error(), "/telemetry/exporter") {
		t.Errorf("unwritable file: %v", err)
	}
}

// TestFrameMemoryReused: the memory of a binary frame's spans goes back to
// the pool once every exporter is done with it, and no exporter sees a
// span changed by a later frame: an OTLP exporter (encoded at once) and an
// SDK exporter that keeps the spans it is given, fed frame after frame
// with distinct targets.
func TestFrameMemoryReused(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{} // target -> spans received over OTLP/HTTP
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			t.Errorf("export: %v", err)
		}
		mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					got[sp.Name]++
				}
			}
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	p, err := New(Options{Config: config.Telemetry{Enabled: true, Exporters: []config.Exporter{
		{Type: config.ExporterOTLP, Protocol: config.ProtocolHTTP, URL: srv.URL + "/v1/traces"},
	}}, BatchSize: 300, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{} // a second exporter, which keeps what it gets
	s := &sink{name: "keeps", log: zap.NewNop(), exp: sdkExporter{rec}, queue: make(chan batch, 1<<16), limit: 1 << 16, memLimit: DefaultQueueBytes,
		stop: make(chan struct{}), done: make(chan struct{}), batch: 300, interval: 10 * time.Millisecond, timeout: 5 * time.Second}
	p.sinks = append(p.sinks, s)
	go s.run()

	src := p.Source("api", 0, 1)
	const frames, per = 40, 128
	for f := range frames {
		spans := make([]ipc.HTTPSpan, per)
		for i := range spans {
			sp := &spans[i]
			sp.Kind, sp.Status = ipc.SpanBinServer, 200
			sp.Flags = ipc.SpanBinRawIDs
			sp.StartMs, sp.EndMs = 1764672000123.456, 1764672000125.789
			sp.TraceID[0], sp.SpanID[0], sp.SpanID[1] = 1, byte(f+1), byte(i+1)
			sp.Method, sp.Target, sp.Host = "GET", fmt.Sprintf("/frame-%02d", f), "h"
		}
		payload := ipc.AppendHTTPSpans(nil, spans)[5:]
		src.IngestBinary(payload)
		clear(payload) // the caller's buffer is its own again
		if f%8 == 7 {
			time.Sleep(15 * time.Millisecond) // let exports run between frames
		}
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for f := range frames {
		if n := got[fmt.Sprintf("GET /frame-%02d", f)]; n != per {
			t.Errorf("OTLP: frame %d: %d spans, want %d (all: %v)", f, n, per, got)
		}
	}
	kept := map[string]int{}
	for _, sp := range rec.spans {
		kept[sp.Name()]++
	}
	for f := range frames {
		if n := kept[fmt.Sprintf("GET /frame-%02d", f)]; n != per {
			t.Errorf("kept spans: frame %d: %d spans, want %d (all: %v)", f, n, per, kept)
		}
	}
}

// TestSpanScopes: spans that name their instrumentation scope (an
// application's own) are exported under it, beside wattd's, in the one
// resource of their worker; the SDK form (console, file, zipkin) carries
// it per span.
func TestSpanScopes(t *testing.T) {
	var mu sync.Mutex
	var reqs []*coltracepb.ExportTraceServiceRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := &coltracepb.ExportTraceServiceRequest{}
		if err := proto.Unmarshal(body, req); err != nil {
			t.Errorf("export: %v", err)
		}
		mu.Lock()
		reqs = append(reqs, req)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	p, err := New(Options{Config: config.Telemetry{Enabled: true, Exporters: []config.Exporter{
		{Type: config.ExporterOTLP, Protocol: config.ProtocolHTTP, URL: srv.URL + "/v1/traces"},
	}}, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	s := &sink{name: "keeps", log: zap.NewNop(), exp: sdkExporter{rec}, queue: make(chan batch, 16), limit: 16, memLimit: DefaultQueueBytes,
		stop: make(chan struct{}), done: make(chan struct{}), batch: 2, interval: 10 * time.Millisecond, timeout: 5 * time.Second}
	p.sinks = append(p.sinks, s)
	go s.run()
	span := func(id int, scope string) string {
		sc := ""
		if scope != "" {
			sc = `,"scope":` + scope
		}
		return fmt.Sprintf(`{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"%016x","name":"s%d","kind":"internal","startMs":1764672000000,"endMs":1764672000001%s}`, id, id, sc)
	}
	orders := `{"name":"orders","version":"1.0.0"}`
	p.Source("api", 0, 1).Ingest(json.RawMessage("[" + strings.Join([]string{
		span(1, orders), span(2, ""), span(3, orders), span(4, `{"name":"billing"}`),
	}, ",") + "]"))
	waitUntil(t, "4 spans kept", func() bool { n, _ := rec.count(); return n == 4 })
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	byScope := map[string][]string{}
	mu.Lock()
	for _, req := range reqs {
		if len(req.ResourceSpans) != 1 {
			t.Errorf("%d resources in one export, want the worker's one", len(req.ResourceSpans))
		}
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				k := ss.Scope.GetName() + "@" + ss.Scope.GetVersion()
				for _, sp := range ss.Spans {
					byScope[k] = append(byScope[k], sp.Name)
				}
			}
		}
	}
	mu.Unlock()
	want := map[string][]string{Scope.Name + "@": {"s2"}, "billing@": {"s4"}, "orders@1.0.0": {"s1", "s3"}}
	if fmt.Sprint(byScope) != fmt.Sprint(want) {
		t.Errorf("OTLP scopes %v", byScope)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, ro := range rec.spans {
		want := map[string]string{"s1": "orders 1.0.0", "s2": Scope.Name + " ", "s3": "orders 1.0.0", "s4": "billing "}[ro.Name()]
		if got := ro.InstrumentationScope().Name + " " + ro.InstrumentationScope().Version; got != want {
			t.Errorf("SDK span %s: scope %q, want %q", ro.Name(), got, want)
		}
	}
}

// TestOTLPEnvEndpoint: without a url in watt.json, the start line names
// the endpoint the exporter's client reads from the environment.
func TestOTLPEnvEndpoint(t *testing.T) {
	for _, c := range []struct {
		protocol string
		env      map[string]string
		want     string
	}{
		{config.ProtocolHTTP, nil, "http://localhost:4318/v1/traces"},
		{config.ProtocolGRPC, nil, "http://localhost:4317"},
		{config.ProtocolHTTP, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c:4318/"}, "https://c:4318/v1/traces"},
		{config.ProtocolGRPC, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c:4317"}, "https://c:4317"},
		{config.ProtocolHTTP, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://t:1/x"}, "https://t:1/x"},
	} {
		if got := otlpEnvEndpoint(c.protocol, func(k string) string { return c.env[k] }); got != c.want {
			t.Errorf("%s %v: %q, want %q", c.protocol, c.env, got, c.want)
		}
	}
}
