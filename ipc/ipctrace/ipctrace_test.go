package ipctrace

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sys/unix"

	"github.com/wattd/wattd/ipc"
)

// dial opens a control channel in this process as a worker would, with
// the test playing wattd on the other end of a socketpair.
func dial(t *testing.T) (*ipc.Control, net.Conn) {
	t.Helper()
	return dialAt(t, ipc.ProtocolVersion)
}

// dialAt is dial with wattd welcoming the worker at version.
func dialAt(t *testing.T, version int) (*ipc.Control, net.Conn) {
	t.Helper()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	parent := os.NewFile(uintptr(pair[0]), "wattd")
	conn, err := net.FileConn(parent)
	parent.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	t.Setenv(ipc.EnvControlFD, strconv.Itoa(pair[1]))
	go func() {
		if _, err := ipc.ReadMessage(conn); err == nil {
			ipc.WriteMessage(conn, &ipc.Message{Type: ipc.TypeWelcome, Version: version, App: "api"})
		}
	}()
	ctl, err := ipc.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	return ctl, conn
}

// readSpans reads spans messages until n valid spans arrived.
func readSpans(t *testing.T, conn net.Conn, n int) (spans []ipc.Span, messages int) {
	t.Helper()
	for len(spans) < n {
		m, err := ipc.ReadMessage(conn)
		if err != nil {
			t.Fatalf("after %d spans: %v", len(spans), err)
		}
		if m.Type != ipc.TypeSpans {
			continue
		}
		messages++
		got, dropped, err := ipc.DecodeSpans(m.Spans)
		if dropped > 0 {
			t.Fatalf("wattd would drop %d spans: %v", dropped, err)
		}
		spans = append(spans, got...)
	}
	return spans, messages
}

// TestHandlerAndTransport: a request served through Handler and a call
// made through Transport give a server span, child of the incoming
// traceparent, and a client span, its child, whose traceparent the called
// server receives; both reach wattd valid.
func TestHandlerAndTransport(t *testing.T) {
	ctl, conn := dial(t)
	tp := NewTracerProvider(ctl)
	var sent string
	callee := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent = r.Header.Get("traceparent")
	}))
	defer callee.Close()
	client := &http.Client{Transport: Transport(tp, nil)}
	h := Handler(tp, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, callee.URL+"/x", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		w.WriteHeader(http.StatusTeapot)
	}))
	req := httptest.NewRequest(http.MethodGet, "/users", nil)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans, _ := readSpans(t, conn, 2)
	var server, client2 ipc.Span
	for _, s := range spans {
		switch s.Kind {
		case ipc.SpanKindServer:
			server = s
		case ipc.SpanKindClient:
			client2 = s
		}
	}
	// The server span's parent is the caller's, another process's span;
	// the client span's is the server span, of this one.
	if server.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || server.ParentSpanID != "00f067aa0ba902b7" || !server.ParentRemote || server.Name != "GET /users" {
		t.Errorf("server span %+v", server)
	}
	if client2.TraceID != server.TraceID || client2.ParentSpanID != server.SpanID || client2.ParentRemote {
		t.Errorf("client span %+v, server %s", client2, server.SpanID)
	}
	if want := "00-" + server.TraceID + "-" + client2.SpanID + "-01"; sent != want {
		t.Errorf("the callee got traceparent %q, want %q", sent, want)
	}
	if server.Attributes["http.response.status_code"] != int64(http.StatusTeapot) || server.StartMs > client2.StartMs || client2.EndMs > server.EndMs {
		t.Errorf("server %+v client %+v", server, client2)
	}
	tp.Shutdown(context.Background())
}

// TestExporterSplitsAndCuts: many spans go in messages within the
// protocol's limits, and values over its limits are cut, so wattd keeps
// every span.
func TestExporterSplitsAndCuts(t *testing.T) {
	ctl, conn := dial(t)
	tp := NewTracerProvider(ctl)
	tracer := tp.Tracer("test")
	const n = ipc.MaxSpansPerMessage + 40
	long := strings.Repeat("é", ipc.MaxAttributeValue+100)
	go func() {
		for i := range n {
			_, sp := tracer.Start(context.Background(), strings.Repeat("n", 2*ipc.MaxSpanName))
			if i < 20 { // a few large spans, so the size limit splits too
				attrs := []attribute.KeyValue{attribute.String("long", long), attribute.StringSlice("list", []string{"a", "b"})}
				for k := range ipc.MaxSpanAttributes + 5 {
					attrs = append(attrs, attribute.Int("k"+strconv.Itoa(k), i))
				}
				sp.SetAttributes(attrs...)
			}
			sp.End()
		}
		tp.ForceFlush(context.Background())
	}()
	spans, messages := readSpans(t, conn, n)
	if messages < n/ipc.MaxSpansPerMessage {
		t.Errorf("%d spans in %d messages", n, messages)
	}
	s := spans[0]
	if len([]rune(s.Name)) != ipc.MaxSpanName || len([]rune(s.Attributes["long"].(string))) != ipc.MaxAttributeValue || len(s.Attributes) != ipc.MaxSpanAttributes {
		t.Errorf("not cut to the limits: name %d, long %d, %d attributes", len(s.Name), len(s.Attributes["long"].(string)), len(s.Attributes))
	}
	if l, ok := s.Attributes["list"].([]string); !ok || len(l) != 2 || l[0] != "a" || l[1] != "b" {
		t.Errorf("a slice attribute should be sent as a list: %#v", s.Attributes["list"])
	}
	tp.Shutdown(context.Background())
}

// TestExporterSplitsBySize: spans too large to share a frame go in
// messages of their own, each within the frame limit.
func TestExporterSplitsBySize(t *testing.T) {
	ctl, conn := dial(t)
	var attrs []attribute.KeyValue
	for k := range ipc.MaxSpanAttributes {
		attrs = append(attrs, attribute.String("k"+strconv.Itoa(k), strings.Repeat("x", ipc.MaxAttributeValue)))
	}
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	var spans []sdktrace.ReadOnlySpan
	for i := range 5 {
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{0, 0, 0, 0, 0, 0, 0, byte(i + 1)}})
		spans = append(spans, tracetest.SpanStub{Name: "big", SpanContext: sc, StartTime: time.Now(), EndTime: time.Now(), Attributes: attrs}.Snapshot())
	}
	go NewExporter(ctl).ExportSpans(context.Background(), spans)
	got, messages := readSpans(t, conn, 5)
	if len(got) != 5 || messages != 5 {
		t.Errorf("%d spans of ~270 KB in %d messages, want 5 in 5", len(got), messages)
	}
}

// TestExporterKeepsFramesWithinTheLimit: a span at every limit, with
// values JSON escapes six bytes a character (about 3 MB encoded), is sent
// cut to fit one frame, keeping its first events and some attributes;
// events and links of an ordinary span are carried whole.
func TestExporterKeepsFramesWithinTheLimit(t *testing.T) {
	ctl, conn := dial(t)
	esc := strings.Repeat("\x01", ipc.MaxAttributeValue)
	var attrs []attribute.KeyValue
	for k := range ipc.MaxSpanAttributes {
		attrs = append(attrs, attribute.String("k"+strconv.Itoa(k), esc))
	}
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	now := time.Now()
	var events []sdktrace.Event
	for i := range ipc.MaxSpanEvents + 3 {
		events = append(events, sdktrace.Event{Name: "e" + strconv.Itoa(i), Time: now, Attributes: attrs[:1]})
	}
	link := sdktrace.Link{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{9}}), Attributes: attrs[:1]}
	sc := func(i byte) trace.SpanContext {
		return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{0, 0, 0, 0, 0, 0, 0, i}})
	}
	spans := []sdktrace.ReadOnlySpan{
		tracetest.SpanStub{Name: "huge", SpanContext: sc(1), StartTime: now, EndTime: now, Attributes: attrs, Events: events, Links: []sdktrace.Link{link}}.Snapshot(),
		tracetest.SpanStub{Name: "small", SpanContext: sc(2), StartTime: now, EndTime: now,
			Events: []sdktrace.Event{{Name: "retry", Time: now, Attributes: []attribute.KeyValue{attribute.Int("n", 2)}}}, Links: []sdktrace.Link{link}}.Snapshot(),
	}
	go NewExporter(ctl).ExportSpans(context.Background(), spans)
	got, _ := readSpans(t, conn, 2)
	huge, small := got[0], got[1]
	if huge.Name != "huge" || len(huge.Events) == 0 || huge.Events[0].Name != "e0" || len(huge.Events) >= ipc.MaxSpanEvents ||
		len(huge.Attributes) == 0 || len(huge.Attributes) >= ipc.MaxSpanAttributes {
		t.Errorf("huge span: %d events and %d attributes, want its first ones of both", len(huge.Events), len(huge.Attributes))
	}
	if small.Name != "small" || len(small.Events) != 1 || small.Events[0].Attributes["n"] != int64(2) || len(small.Links) != 1 ||
		small.Links[0].SpanID != "0900000000000000" || len([]rune(small.Links[0].Attributes["k0"].(string))) != ipc.MaxAttributeValue {
		t.Errorf("small span: events %+v, links %+v", small.Events, small.Links)
	}
}

// TestExporterForAnOlderWattd: welcomed at version 3, the exporter sends
// spans as that wattd takes them: lists as JSON text, no events or links
// (which it would refuse or ignore).
func TestExporterForAnOlderWattd(t *testing.T) {
	ctl, conn := dialAt(t, 3)
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	now := time.Now()
	sp := tracetest.SpanStub{Name: "s", StartTime: now, EndTime: now,
		SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{1}}),
		Attributes:  []attribute.KeyValue{attribute.StringSlice("tags", []string{"a", "b"}), attribute.Int("n", 1)},
		Events:      []sdktrace.Event{{Name: "e", Time: now}},
		Links:       []sdktrace.Link{{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{2}})}},
	}.Snapshot()
	go NewExporter(ctl).ExportSpans(context.Background(), []sdktrace.ReadOnlySpan{sp})
	got, _ := readSpans(t, conn, 1)
	if got[0].Attributes["tags"] != `["a","b"]` || got[0].Attributes["n"] != int64(1) || got[0].Events != nil || got[0].Links != nil {
		t.Errorf("span for a version-3 wattd: %+v", got[0])
	}
}

// TestHandlerSkips: requests named by the app info file's skip rules get
// no span; others do.
func TestHandlerSkips(t *testing.T) {
	info := filepath.Join(t.TempDir(), "app.json")
	data, _ := json.Marshal(ipc.AppInfo{Tracing: &ipc.TracingInfo{ServiceName: "s", Skip: []ipc.TraceSkip{
		{Path: "/health", Method: "GET"}, {Path: "/^\\/static\\//"},
	}}})
	if err := os.WriteFile(info, data, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(ipc.EnvAppInfo, info)
	if !Enabled() {
		t.Fatal("Enabled() is false with tracing in the app info file")
	}
	ctl, conn := dial(t)
	tp := NewTracerProvider(ctl)
	h := Handler(tp, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for _, r := range []struct{ method, path string }{
		{"GET", "/health"}, {"GET", "/static/app.js"}, {"POST", "/health"}, {"GET", "/users"},
	} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(r.method, r.path, nil))
	}
	tp.ForceFlush(context.Background())
	spans, _ := readSpans(t, conn, 2)
	var names []string
	for _, s := range spans {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "POST /health,GET /users" {
		t.Errorf("spans %v, want POST /health and GET /users only", names)
	}
	tp.Shutdown(context.Background())
}

// TestSampler: the app info's sampler names map to the Go SDK's samplers,
// with the default for none and for a name wattd does not know.
func TestSampler(t *testing.T) {
	quarter := 0.25
	tests := []struct {
		tr   *ipc.TracingInfo
		want string
	}{
		{nil, sdktrace.ParentBased(sdktrace.AlwaysSample()).Description()},
		{&ipc.TracingInfo{}, sdktrace.ParentBased(sdktrace.AlwaysSample()).Description()},
		{&ipc.TracingInfo{Sampler: "always_on"}, sdktrace.AlwaysSample().Description()},
		{&ipc.TracingInfo{Sampler: "always_off"}, sdktrace.NeverSample().Description()},
		{&ipc.TracingInfo{Sampler: "parentbased_always_off"}, sdktrace.ParentBased(sdktrace.NeverSample()).Description()},
		{&ipc.TracingInfo{Sampler: "traceidratio", Ratio: &quarter}, sdktrace.TraceIDRatioBased(0.25).Description()},
		{&ipc.TracingInfo{Sampler: "traceidratio"}, sdktrace.TraceIDRatioBased(1).Description()},
		{&ipc.TracingInfo{Sampler: "parentbased_traceidratio", Ratio: &quarter}, sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.25)).Description()},
		{&ipc.TracingInfo{Sampler: "xray"}, sdktrace.ParentBased(sdktrace.AlwaysSample()).Description()},
	}
	for _, tt := range tests {
		if got := Sampler(tt.tr).Description(); got != tt.want {
			t.Errorf("%+v: %s, want %s", tt.tr, got, tt.want)
		}
	}
}
