package telemetry

import (
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/wattd/wattd/supervisor/config"
)

// logSink collects what an OTLP logs endpoint received.
type logSink struct {
	mu       sync.Mutex
	requests []*collogspb.ExportLogsServiceRequest
}

func (s *logSink) add(r *collogspb.ExportLogsServiceRequest) {
	s.mu.Lock()
	s.requests = append(s.requests, r)
	s.mu.Unlock()
}

// records waits for n records and returns them with their resource's
// attributes.
func (s *logSink) records(t *testing.T, n int) ([]*logspb.LogRecord, map[string]string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		var out []*logspb.LogRecord
		res := map[string]string{}
		for _, r := range s.requests {
			for _, rl := range r.ResourceLogs {
				for _, kv := range rl.Resource.GetAttributes() {
					res[kv.Key] = kv.Value.GetStringValue()
				}
				for _, sl := range rl.ScopeLogs {
					if sl.Scope.GetName() != "wattd" {
						t.Errorf("scope %v", sl.Scope)
					}
					out = append(out, sl.LogRecords...)
				}
			}
		}
		s.mu.Unlock()
		if len(out) >= n {
			return out, res
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d log records within 10s, want %d", len(out), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func attrsOf(kvs []*commonpb.KeyValue) map[string]*commonpb.AnyValue {
	m := map[string]*commonpb.AnyValue{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

// TestLogExportHTTP: entries become OTLP log records (severity, body, the
// request's trace and span ids, the fields as attributes, the logger's
// name), POSTed as protobuf with telemetry's service name.
func TestLogExportHTTP(t *testing.T) {
	sink := &logSink{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req collogspb.ExportLogsServiceRequest
		if r.URL.Path != "/v1/logs" || r.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "not an OTLP logs export", http.StatusBadRequest)
			return
		}
		sink.add(&req)
	}))
	t.Cleanup(srv.Close)
	e, err := NewLogExporter(config.LogExport{Protocol: "http", URL: srv.URL + "/v1/logs", ServiceName: "shop", Version: "1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	const trace, span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	e.Line([]byte(`{"level":30,"time":1764672000123,"name":"api","msg":"order placed","worker":1,"reqId":"r-1","traceId":"` + trace + `","spanId":"` + span + `","order":{"id":42,"items":["a","b"]},"pid":42,"hostname":"h"}`))
	e.Line([]byte(`{"level":40,"time":1764672000124.5,"name":"metrics","msg":"scrape slow","took":1.5}`))
	e.Line([]byte(`{"level":50,"time":1764672000125,"name":"runtime","msg":"no trace","traceId":"not hex"}`))
	e.Line([]byte(`not json`))
	e.Line([]byte(`{"level":20,"msg":"own pino","trace_id":"` + trace + `","span_id":"` + span + `","trace_flags":"01"}`))

	recs, res := sink.records(t, 4)
	if res["service.name"] != "shop" || res["service.version"] != "1.2.3" {
		t.Errorf("resource %v", res)
	}
	order, slow, plain := recs[0], recs[1], recs[2]
	a := attrsOf(order.Attributes)
	if order.Body.GetStringValue() != "order placed" || order.SeverityNumber != logspb.SeverityNumber_SEVERITY_NUMBER_INFO || order.SeverityText != "info" ||
		hex.EncodeToString(order.TraceId) != trace || hex.EncodeToString(order.SpanId) != span || order.TimeUnixNano != 1764672000123000000 {
		t.Errorf("record %v", order)
	}
	if a["name"].GetStringValue() != "api" || a["worker"].GetIntValue() != 1 || a["reqId"].GetStringValue() != "r-1" || a["pid"].GetIntValue() != 42 ||
		a["traceId"] != nil || a["spanId"] != nil || a["msg"] != nil || a["level"] != nil || a["time"] != nil {
		t.Errorf("attributes %v", a)
	}
	if kv := attrsOf(a["order"].GetKvlistValue().GetValues()); kv["id"].GetIntValue() != 42 || len(kv["items"].GetArrayValue().GetValues()) != 2 {
		t.Errorf("nested attribute %v", a["order"])
	}
	if sa := attrsOf(slow.Attributes); slow.SeverityNumber != logspb.SeverityNumber_SEVERITY_NUMBER_WARN || slow.SeverityText != "warn" ||
		sa["name"].GetStringValue() != "metrics" || sa["took"].GetDoubleValue() != 1.5 || slow.TimeUnixNano != 1764672000124500000 {
		t.Errorf("second record %v", slow)
	}
	if pa := attrsOf(plain.Attributes); plain.TraceId != nil || pa["traceId"].GetStringValue() != "not hex" || plain.SeverityNumber != logspb.SeverityNumber_SEVERITY_NUMBER_ERROR {
		t.Errorf("a record without a valid trace id: %v", plain)
	}

	if own := recs[3]; hex.EncodeToString(own.TraceId) != trace || hex.EncodeToString(own.SpanId) != span || own.SeverityText != "debug" ||
		attrsOf(own.Attributes)["trace_id"] != nil || attrsOf(own.Attributes)["trace_flags"].GetStringValue() != "01" {
		t.Errorf("a line of OpenTelemetry's pino instrumentation: %v", own)
	}

	// What is queued at shutdown still goes.
	e.Line([]byte(`{"level":30,"msg":"last words"}`))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	recs, _ = sink.records(t, 5)
	if recs[4].Body.GetStringValue() != "last words" {
		t.Errorf("after shutdown: %v", recs[4])
	}
	if exported, dropped := e.Counts(); exported != 5 || dropped != 1 { // the line that is not JSON
		t.Errorf("counts: %d exported, %d dropped", exported, dropped)
	}
}

type logsServer struct {
	collogspb.UnimplementedLogsServiceServer
	sink *logSink
}

func (s logsServer) Export(_ context.Context, req *collogspb.ExportLogsServiceRequest) (*collogspb.ExportLogsServiceResponse, error) {
	s.sink.add(req)
	return &collogspb.ExportLogsServiceResponse{}, nil
}

// TestLogExportGRPC: protocol grpc sends to the collector's logs service.
func TestLogExportGRPC(t *testing.T) {
	sink := &logSink{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	collogspb.RegisterLogsServiceServer(gs, logsServer{sink: sink})
	go gs.Serve(l)
	t.Cleanup(gs.Stop)
	e, err := NewLogExporter(config.LogExport{Protocol: "grpc", URL: "http://" + l.Addr().String(), ServiceName: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Shutdown(context.Background()) })
	e.Line([]byte(`{"level":30,"msg":"over grpc","n":7}`))
	recs, res := sink.records(t, 1)
	if recs[0].Body.GetStringValue() != "over grpc" || attrsOf(recs[0].Attributes)["n"].GetIntValue() != 7 || res["service.name"] != "shop" {
		t.Errorf("record %v, resource %v", recs[0], res)
	}
}

// TestLogExportFailures: a refused export is dropped and told once; a
// busy endpoint (503) is tried again; logging never waits for the
// exporter, whose queue drops what is past its bound.
func TestLogExportFailures(t *testing.T) {
	var calls atomic.Int64
	status := atomic.Int64{}
	status.Store(http.StatusBadRequest)
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if status.Load() == 0 {
			<-block
			return
		}
		http.Error(w, "no thanks", int(status.Load()))
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(block) })
	e, err := NewLogExporter(config.LogExport{Protocol: "http", URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	core, warned := observer.New(zapcore.InfoLevel)
	e.SetLogger(zap.New(core))
	line := []byte(`{"level":30,"msg":"x"}`)
	e.Line(line)
	waitUntil(t, "the refused batch dropped", func() bool { _, d := e.Counts(); return d == 1 })
	if calls.Load() != 1 || warned.FilterMessage("log export failed; the entries are dropped").Len() != 1 ||
		!strings.Contains(warned.All()[0].ContextMap()["error"].(string), "400 Bad Request") {
		t.Errorf("400: %d calls, warnings %v", calls.Load(), warned.All())
	}

	status.Store(http.StatusServiceUnavailable)
	calls.Store(0)
	e.Line(line)
	waitUntil(t, "the busy batch tried 3 times", func() bool { _, d := e.Counts(); return d == 2 })
	if calls.Load() != logTries {
		t.Errorf("503: %d calls, want %d", calls.Load(), logTries)
	}

	// An endpoint that never answers: the sender is stuck on one batch,
	// the queue fills, and logging goes on at once.
	status.Store(0)
	start := time.Now()
	for i := 0; i < logQueue+logBatch+1000; i++ {
		e.Line(line)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("logging %d entries took %v", logQueue+logBatch+1000, took)
	}
	if _, d := e.Counts(); d < 1000 {
		t.Errorf("%d dropped with the queue full, want at least 1000", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := e.Shutdown(ctx); err == nil {
		t.Errorf("shutdown with a batch stuck: no error")
	}
}

// TestLogExportSlowCollectorFullBatches: behind a collector slower than
// the export period, what queues meanwhile goes out in full batches, not
// a record or two per slow export.
func TestLogExportSlowCollectorFullBatches(t *testing.T) {
	sink := &logSink{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req collogspb.ExportLogsServiceRequest
		if proto.Unmarshal(body, &req) != nil {
			http.Error(w, "not an OTLP logs export", http.StatusBadRequest)
			return
		}
		time.Sleep(1500 * time.Millisecond) // slower than the 1 s period
		sink.add(&req)
	}))
	t.Cleanup(srv.Close)
	e, err := NewLogExporter(config.LogExport{Protocol: "http", URL: srv.URL + "/v1/logs", ServiceName: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Shutdown(context.Background()) })
	// 100 records a second for 7 s: every export finds about 150 queued.
	const n = 700
	for i := range n {
		e.Line([]byte(`{"level":30,"msg":"m` + strconv.Itoa(i) + `"}`))
		time.Sleep(10 * time.Millisecond)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		sink.mu.Lock()
		got := 0
		var sizes []int
		for _, r := range sink.requests {
			k := len(r.ResourceLogs[0].ScopeLogs[0].LogRecords)
			got += k
			sizes = append(sizes, k)
		}
		sink.mu.Unlock()
		if got >= n {
			// The first and the last batch may be small.
			for _, k := range sizes[1 : len(sizes)-1] {
				if k < 50 {
					t.Fatalf("batch sizes %v: records queued behind a slow export went out a few at a time", sizes)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records exported; batch sizes %v", got, n, sizes)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
