package telemetry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/proto"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/config"
)

// stuckCollector is an OTLP/HTTP receiver that answers no export until
// the test ends: the exporter's queue only fills.
func stuckCollector(t *testing.T) string {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return srv.URL + "/v1/traces"
}

// otlpPipeline runs a pipeline with one OTLP/HTTP exporter to url.
func otlpPipeline(t *testing.T, url string, log *zap.Logger, interval time.Duration) *Pipeline {
	t.Helper()
	if log == nil {
		log = zap.NewNop()
	}
	p, err := New(Options{Config: config.Telemetry{Enabled: true, Exporters: []config.Exporter{
		{Type: config.ExporterOTLP, Protocol: config.ProtocolHTTP, URL: url},
	}}, Logger: log, Interval: interval, ExportTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		p.Shutdown(ctx)
	})
	return p
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestPaddedFramesPinNothing: a binary frame of one valid record, invalid
// ones and a megabyte of bytes after them keeps only the valid record
// while it waits for a collector that does not answer; 300 of them take
// a few kilobytes of the queue, not 300 MB of memory, and none is
// dropped.
func TestPaddedFramesPinNothing(t *testing.T) {
	p := otlpPipeline(t, stuckCollector(t), nil, time.Hour)
	src := p.Source("api", 0, 1)
	good := ipc.HTTPSpan{Kind: ipc.SpanBinServer, Flags: ipc.SpanBinRawIDs, Status: 200, StartMs: 1764672000123, EndMs: 1764672000124,
		Method: "GET", Target: "/padded", Host: "h"}
	good.TraceID[0], good.SpanID[0] = 1, 1
	bad := good
	bad.Kind = 9
	const frames, pad = 300, 1 << 20
	payload := ipc.AppendHTTPSpans(nil, []ipc.HTTPSpan{good, bad, bad})[5:]
	payload = append(payload, make([]byte, pad)...)
	before := heapInUse()
	for range frames {
		src.IngestBinary(payload)
	}
	grown := int64(heapInUse()) - int64(before)
	if grown > 32<<20 {
		t.Errorf("%d padded frames of one valid span each keep %d MiB alive", frames, grown>>20)
	}
	if c := p.Counts()["api"]; c.Received != 3*frames || c.Invalid != 2*frames || c.QueueFull != 0 {
		t.Errorf("counts %+v: want every valid span queued", c)
	}
}

// fatSpans is a JSON spans message of n spans, each with 60 attributes
// of 4000 characters (some 240 kB).
func fatSpans(n int) json.RawMessage {
	attrs := make([]string, 60)
	for i := range attrs {
		attrs[i] = fmt.Sprintf(`"a%d":"%s"`, i, strings.Repeat("v", 4000))
	}
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf(`{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"%016x","name":"fat","kind":"internal","startMs":1764672000000,"endMs":1764672000001,"attributes":{%s}}`,
			i+1, strings.Join(attrs, ","))
	}
	return json.RawMessage("[" + strings.Join(items, ",") + "]")
}

// TestQueueBoundedInBytes: spans that are legal but large fill a queue by
// its bytes long before its count: with the collector stuck, 400 spans
// of 240 kB find the queue full after some 64 MiB, are dropped and
// counted as for a full queue, and what is kept stays near the bound.
func TestQueueBoundedInBytes(t *testing.T) {
	p := otlpPipeline(t, stuckCollector(t), nil, time.Hour)
	src := p.Source("api", 0, 1)
	msg := fatSpans(1)
	before := heapInUse()
	const n = 400
	for range n {
		src.Ingest(msg)
	}
	grown := int64(heapInUse()) - int64(before)
	c := p.Counts()["api"]
	kept := n - int64(c.QueueFull)
	// The queue's 64 MiB, and the export in flight (about 1 MiB).
	if c.Received != n || c.QueueFull == 0 || kept*240_000 > 70<<20 {
		t.Errorf("counts %+v: want the spans past 64 MiB dropped as for a full queue", c)
	}
	if grown > 100<<20 {
		t.Errorf("%d spans kept take %d MiB", kept, grown>>20)
	}
}

// collector is an OTLP/HTTP receiver that keeps the size of each export
// and the spans it holds.
type collector struct {
	mu    sync.Mutex
	sizes []int
	spans int
}

func (c *collector) start(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			t.Errorf("export: %v", err)
		}
		c.mu.Lock()
		c.sizes = append(c.sizes, len(body))
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				c.spans += len(ss.Spans)
			}
		}
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/v1/traces"
}

func (c *collector) got() (sizes []int, spans int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.sizes...), c.spans
}

// TestExportsBoundedInBytes: one export carries about 1 MiB at most,
// whatever its spans hold (events, list values, status messages, not
// only names and string attributes); a span larger on its own goes
// alone.
func TestExportsBoundedInBytes(t *testing.T) {
	var col collector
	p := otlpPipeline(t, col.start(t), nil, 10*time.Millisecond)
	big := strings.Repeat("e", 4000)
	ev := make([]string, 20)
	for i := range ev {
		ev[i] = fmt.Sprintf(`{"name":"ev%d","timeMs":1764672000000,"attributes":{"a":%q,"b":[%q,%q]}}`, i, big, big, big)
	}
	span := func(i int, events []string) string {
		return fmt.Sprintf(`{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"%016x","name":"s","kind":"internal","startMs":1764672000000,"endMs":1764672000001,`+
			`"status":"error","statusMessage":%q,"events":[%s]}`, i+1, big, strings.Join(events, ","))
	}
	items := make([]string, 40) // some 250 kB each, 10 MB in all
	for i := range items {
		items[i] = span(i, ev)
	}
	// One span of some 1.5 MB: 64 events.
	huge := make([]string, 64)
	for i := range huge {
		huge[i] = ev[0]
	}
	items = append(items, span(40, huge))
	src := p.Source("api", 0, 1)
	src.Ingest(json.RawMessage("[" + strings.Join(items, ",") + "]"))
	waitUntil(t, "41 spans exported", func() bool { _, n := col.got(); return n == 41 })
	sizes, _ := col.got()
	over := 0
	for _, sz := range sizes {
		if sz > maxExportBytes+64<<10 {
			over++
		}
	}
	// The one span over the bound goes alone.
	if over > 1 || len(sizes) < 10 {
		t.Errorf("export sizes %v: want each under about %d bytes but the one span over it", sizes, maxExportBytes)
	}
}

// TestFileExportErrorClipped: a file exporter that cannot write logs
// its failure in a line of about a kilobyte, not one error per span.
func TestFileExportErrorClipped(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	p, err := New(Options{Config: config.Telemetry{Enabled: true, Exporters: []config.Exporter{{Type: config.ExporterFile, Path: "/dev/full"}}},
		Logger: zap.New(core), Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	p.Source("api", 0, 1).Ingest(spansJSON(500, "4bf92f3577b34da6a3ce929d0e0e4736"))
	failed := func() []observer.LoggedEntry {
		return logs.FilterMessage("could not export spans; they are dropped").All()
	}
	waitUntil(t, "the failed export logged", func() bool { return len(failed()) > 0 })
	e := failed()[0]
	text := fmt.Sprint(e.ContextMap()["error"])
	if len(text) > 1024 || !strings.Contains(text, "no space left on device") || !strings.Contains(text, "more") {
		t.Errorf("error of %d bytes: %.300s", len(text), text)
	}
}

// TestDescribeMasksURLPasswords: an exporter is named in the log ("tracing
// on", each failed export) without the password of its URL.
func TestDescribeMasksURLPasswords(t *testing.T) {
	for _, c := range []struct {
		ec   config.Exporter
		want string
	}{
		{config.Exporter{Type: config.ExporterOTLP, Protocol: "http", URL: "http://u:pw9@collector:4318/v1/traces"}, "otlp/http http://u:[redacted]@collector:4318/v1/traces"},
		{config.Exporter{Type: config.ExporterZipkin, URL: "https://u:pw9@zipkin/api/v2/spans"}, "zipkin https://u:[redacted]@zipkin/api/v2/spans"},
		{config.Exporter{Type: config.ExporterOTLP, Protocol: "grpc", URL: "http://collector:4317"}, "otlp/grpc http://collector:4317"},
	} {
		if got := describe(c.ec); got != c.want {
			t.Errorf("describe(%+v) = %q, want %q", c.ec, got, c.want)
		}
	}
}
