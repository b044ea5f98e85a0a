package main_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/wattd/wattd/supervisor"
)

// gotSpan is one span a receiver got, with its resource's attributes.
type gotSpan struct {
	res  map[string]any
	span *tracepb.Span
}

func (s gotSpan) id() string       { return hex.EncodeToString(s.span.SpanId) }
func (s gotSpan) parent() string   { return hex.EncodeToString(s.span.ParentSpanId) }
func (s gotSpan) traceID() string  { return hex.EncodeToString(s.span.TraceId) }
func (s gotSpan) start() time.Time { return time.Unix(0, int64(s.span.StartTimeUnixNano)) }
func (s gotSpan) end() time.Time   { return time.Unix(0, int64(s.span.EndTimeUnixNano)) }

func (s gotSpan) attr(k string) any {
	for _, kv := range s.span.Attributes {
		if kv.Key == k {
			return anyValue(kv.Value)
		}
	}
	return nil
}

func anyValue(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	}
	return nil
}

// receiver collects what OTLP exporters send it, over HTTP or gRPC.
type receiver struct {
	mu      sync.Mutex
	spans   []gotSpan
	headers []http.Header // of each export
	url     string
	coltracepb.UnimplementedTraceServiceServer
}

func (r *receiver) add(req *coltracepb.ExportTraceServiceRequest, h http.Header) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.headers = append(r.headers, h)
	for _, rs := range req.ResourceSpans {
		res := map[string]any{}
		for _, kv := range rs.GetResource().GetAttributes() {
			res[kv.Key] = anyValue(kv.Value)
		}
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				r.spans = append(r.spans, gotSpan{res: res, span: sp})
			}
		}
	}
}

// trace returns the spans of one trace received so far.
func (r *receiver) trace(id string) []gotSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []gotSpan
	for _, s := range r.spans {
		if s.traceID() == id {
			out = append(out, s)
		}
	}
	return out
}

func (r *receiver) header(k string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range r.headers {
		if v := h.Get(k); v != "" {
			return v
		}
	}
	return ""
}

// Export is the gRPC trace service.
func (r *receiver) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	h := http.Header{}
	for k, vs := range md {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	r.add(req, h)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// telemetry is a watt.json telemetry block that exports every span to r
// over OTLP/HTTP, under applicationName name.
func (r *receiver) telemetry(name string) map[string]any {
	return map[string]any{
		"applicationName": name,
		"exporter":        map[string]any{"type": "otlp", "options": map[string]any{"url": r.url}},
	}
}

// otlpHTTPReceiver serves OTLP/HTTP (protobuf) on a loopback port.
func otlpHTTPReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var msg coltracepb.ExportTraceServiceRequest
		if req.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(body, &msg) != nil {
			http.Error(w, "not an OTLP protobuf export", http.StatusUnsupportedMediaType)
			return
		}
		r.add(&msg, req.Header.Clone())
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	r.url = "http://" + l.Addr().String() + "/v1/traces"
	return r
}

// otlpGRPCReceiver serves the OTLP trace service over gRPC on a loopback
// port.
func otlpGRPCReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, r)
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	r.url = "http://" + l.Addr().String()
	return r
}

var (
	gotraceOnce sync.Once
	gotraceErr  error
	gotraceOut  []byte
)

// buildGotrace builds the traced Go fixture once, as `wattd build` would.
func buildGotrace(t *testing.T) string {
	t.Helper()
	dir := fixture("apps/gotrace")
	gotraceOnce.Do(func() {
		cmd := exec.Command("go", "build", "-o", filepath.Join(".wattd", "app"), ".")
		cmd.Dir = dir
		gotraceOut, gotraceErr = cmd.CombinedOutput()
	})
	if gotraceErr != nil {
		t.Fatalf("build apps/gotrace: %v\n%s", gotraceErr, gotraceOut)
	}
	return dir
}

// tracedProject is a front application (2 workers) calling back over the
// mesh, both the traced Go fixture, with the given telemetry key.
func tracedProject(t *testing.T, telemetry map[string]any, extra ...map[string]any) string {
	app := buildGotrace(t)
	cfg := map[string]any{
		"entrypoint": "front",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"telemetry":  telemetry,
		"applications": []any{
			map[string]any{"id": "front", "path": app, "workers": 2},
			map[string]any{"id": "back", "path": app},
		},
	}
	for _, e := range extra {
		for k, v := range e {
			cfg[k] = v
		}
	}
	return project(t, cfg)
}

// pidOf is the pid of app's worker index in a ps snapshot.
func pidOf(apps []supervisor.AppStatus, app string, worker int64) int64 {
	for _, a := range apps {
		for _, w := range a.Workers {
			if a.ID == app && int64(w.Index) == worker {
				return int64(w.PID)
			}
		}
	}
	return -1
}

// TestTracingOTLPHTTP: a request entering front with a traceparent and
// calling back over the mesh reaches an OTLP/HTTP receiver as one trace:
// front's server span is the caller's child, its client span the server
// span's child and back's server span the client span's child, each with
// its application's and worker's resource and times nested as they ran.
// A worker that sends broken spans has them dropped and counted, keeps
// running, and its valid spans still go.
func TestTracingOTLPHTTP(t *testing.T) {
	integration(t)
	rcv := otlpHTTPReceiver(t)
	metricsPort := freePort(t)
	dir := tracedProject(t, map[string]any{
		"applicationName": "shop",
		"version":         "1.2.3",
		"exporter": map[string]any{"type": "otlp", "options": map[string]any{
			"url": rcv.url, "headers": map[string]any{"x-collector-token": "s3cret"},
		}},
	}, map[string]any{"metrics": map[string]any{"hostname": "127.0.0.1", "port": metricsPort}})
	port := freePort(t)
	d := startWattd(t, dir, port, startOpts{})
	if body := waitHTTP(t, d.url("/"), 30*time.Second); !strings.Contains(body, "tracing=true") {
		t.Fatalf("GET /: %q; the app should see tracing on in its app info", body)
	}
	d.waitReady("front", 10*time.Second)
	d.waitReady("back", 10*time.Second)

	const traceID, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	before := time.Now()
	code, _, body, err := getWith(fresh, d.url("/chain?to=back"), map[string]string{"traceparent": "00-" + traceID + "-" + callerSpan + "-01"})
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if code != 200 || !strings.Contains(body, "leaf back") {
		t.Fatalf("GET /chain: %d %q", code, body)
	}
	server, client, leaf := chainSpans(t, rcv, traceID, callerSpan, "front", "back", "")
	if server.span.Name != "GET /chain" || leaf.span.Name != "GET /leaf" || server.attr("http.response.status_code") != int64(200) {
		t.Errorf("names %q, %q; status code attribute %v", server.span.Name, leaf.span.Name, server.attr("http.response.status_code"))
	}
	ps := d.ps()
	for _, c := range []struct {
		s       gotSpan
		app     string
		service string
	}{{server, "front", "shop-front"}, {client, "front", "shop-front"}, {leaf, "back", "shop-back"}} {
		r := c.s.res
		worker, _ := r["wattd.worker.id"].(int64)
		if r["service.name"] != c.service || r["service.version"] != "1.2.3" || r["wattd.application.id"] != c.app ||
			r["process.pid"] != pidOf(ps, c.app, worker) {
			t.Errorf("span %q: resource %v; want service %s of app %s, pid of its worker %d", c.s.span.Name, r, c.service, c.app, worker)
		}
	}
	if server.res["wattd.worker.id"] != client.res["wattd.worker.id"] {
		t.Errorf("front's server and client spans come from different workers: %v, %v", server.res, client.res)
	}
	// The times are the workers' own, nested as the calls ran.
	order := []time.Time{before, server.start(), client.start(), leaf.start(), leaf.end(), client.end(), server.end(), after}
	for i := 1; i < len(order); i++ {
		if order[i].Before(order[i-1]) {
			t.Errorf("times out of order at %d: %v", i, order)
		}
	}
	if got := rcv.header("x-collector-token"); got != "s3cret" {
		t.Errorf("export header x-collector-token = %q", got)
	}

	// A lying worker: 7 broken spans and one valid in one message, then
	// a spans member that is not an array.
	_, lied, err := get(fresh, d.url("/lie"))
	if err != nil || !strings.HasPrefix(lied, "lied ") {
		t.Fatalf("GET /lie: %q %v", lied, err)
	}
	liar, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(lied, "lied ")))
	waitFor(t, 20*time.Second, "the liar's valid span at the receiver", func() bool {
		return len(rcv.trace("0af7651916cd43dd8448eb211c80319c")) == 1
	})
	d.waitOutput("worker sent invalid spans; they are dropped", 10*time.Second)
	var counts *supervisor.SpanCounts
	waitFor(t, 10*time.Second, "8 invalid spans counted", func() bool {
		counts = d.app("front").Spans
		return counts != nil && counts.Invalid == 8
	})
	if counts.Received < 3+8 || counts.QueueFull != 0 {
		t.Errorf("front's span counts: %+v", counts)
	}
	_, scrape, err := get(fresh, "http://127.0.0.1:"+strconv.Itoa(metricsPort)+"/metrics")
	if err != nil || !strings.Contains(scrape, `wattd_spans_dropped_total{applicationId="front",reason="invalid"} 8`) ||
		!strings.Contains(scrape, `wattd_spans_dropped_total{applicationId="back",reason="queue_full"} 0`) {
		t.Errorf("/metrics lacks the span counters (%v):\n%s", err, scrape)
	}
	front := d.app("front")
	if !alive(liar) || (front.Workers[0].PID != liar && front.Workers[1].PID != liar) || front.Workers[0].Restarts+front.Workers[1].Restarts != 0 {
		t.Errorf("the worker that lied (pid %d) should be running still: %+v", liar, front.Workers)
	}
	if _, body, err := get(fresh, d.url("/")); err != nil || !strings.Contains(body, "gotrace front") {
		t.Errorf("wattd stopped serving after the lie: %q %v", body, err)
	}
}

// TestTracingOTLPGRPC: the gRPC exporter reaches a receiver of the OTLP
// trace service; spans still queued when wattd stops are flushed (the
// batch delay, OTEL_BSP_SCHEDULE_DELAY, is longer than the test).
func TestTracingOTLPGRPC(t *testing.T) {
	integration(t)
	rcv := otlpGRPCReceiver(t)
	dir := tracedProject(t, map[string]any{
		"applicationName": "grpcshop",
		"exporter": []any{map[string]any{"type": "otlp", "options": map[string]any{
			"url": rcv.url, "protocol": "grpc", "headers": map[string]any{"x-grpc-token": "t0k"},
		}}},
	})
	port := freePort(t)
	d := startWattd(t, dir, port, startOpts{env: []string{"OTEL_BSP_SCHEDULE_DELAY=600000"}})
	waitHTTP(t, d.url("/"), 30*time.Second)
	const traceID = "5bf92f3577b34da6a3ce929d0e0e4736"
	if _, _, _, err := getWith(fresh, d.url("/chain?to=back"), map[string]string{"traceparent": "00-" + traceID + "-10f067aa0ba902b7-01"}); err != nil {
		t.Fatal(err)
	}
	// The spans are in the workers' queues or in wattd's, which only the
	// stop empties now.
	d.signal(syscall.SIGTERM)
	if code := d.wait(30 * time.Second); code != 0 {
		t.Fatalf("wattd exit code %d", code)
	}
	spans := rcv.trace(traceID)
	if len(spans) != 3 {
		t.Fatalf("%d spans arrived by wattd's exit, want 3", len(spans))
	}
	for _, s := range spans {
		if want := "grpcshop-" + s.res["wattd.application.id"].(string); s.res["service.name"] != want {
			t.Errorf("service.name %v, want %s", s.res["service.name"], want)
		}
	}
	if got := rcv.header("x-grpc-token"); got != "t0k" {
		t.Errorf("gRPC metadata x-grpc-token = %q", got)
	}
}

// TestTracingConsoleAndFile: the console exporter writes one JSON object
// per span on wattd's standard output, apart from its log on stderr; the
// file exporter appends JSON lines to options.path.
func TestTracingConsoleAndFile(t *testing.T) {
	integration(t)
	dir := tracedProject(t, map[string]any{
		"applicationName": "files",
		"exporter": []any{
			map[string]any{"type": "console"},
			map[string]any{"type": "file", "options": map[string]any{"path": "out/spans.jsonl"}},
		},
	})
	if err := os.MkdirAll(filepath.Join(dir, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	runBase := t.TempDir()
	cmd := exec.Command(wattdBin, "start", dir)
	cmd.Env = append(os.Environ(), "WATTD_RUNTIME_DIR="+runBase, "PLT_SERVER_PORT="+strconv.Itoa(port), "WATTD_LOG_FORMAT=json")
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		stopGracefully(cmd.Process, done)
		if t.Failed() {
			t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
		}
	})
	waitHTTP(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/", 30*time.Second)
	_, _, rb, err := getWith(fresh, "http://127.0.0.1:"+strconv.Itoa(port)+"/chain?to=back",
		map[string]string{"traceparent": "00-6bf92f3577b34da6a3ce929d0e0e4736-20f067aa0ba902b7-01"})
	if err != nil {
		t.Fatal(err)
	}
	if rb != "leaf back\n" {
		t.Errorf("/chain answered %q, want the back application's leaf", rb)
	}
	// stdouttrace's JSON names the span and its ids in SpanContext.
	type stub struct {
		Name        string
		SpanContext struct{ TraceID, SpanID string }
		Resource    []struct {
			Key   string
			Value struct{ Value any }
		}
	}
	spansIn := func(text string) (n int) {
		sc := bufio.NewScanner(strings.NewReader(text))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var s stub
			if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
				t.Errorf("a line that is not one JSON object: %q", sc.Text())
				continue
			}
			if s.SpanContext.TraceID == "6bf92f3577b34da6a3ce929d0e0e4736" {
				n++
			}
		}
		return n
	}
	waitFor(t, 20*time.Second, "3 spans on stdout", func() bool { return spansIn(stdout.String()) == 3 })
	stopGracefully(cmd.Process, done)
	if n := spansIn(stdout.String()); n != 3 {
		t.Errorf("%d spans on stdout, want 3", n)
	}
	data, err := os.ReadFile(filepath.Join(dir, "out", "spans.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if n := spansIn(string(data)); n != 3 {
		t.Errorf("%d spans in the file, want 3:\n%s", n, data)
	}
	if !strings.Contains(string(data), `"files-back"`) {
		t.Errorf("the file's spans lack back's service.name:\n%s", data)
	}
	if strings.Contains(stderr.String(), "6bf92f3577b34da6a3ce929d0e0e4736") {
		t.Errorf("spans went to the log on stderr")
	}
}

// TestTracingBadConfig: a wrong telemetry value stops wattd before it
// starts anything, naming the file and the JSON pointer.
func TestTracingBadConfig(t *testing.T) {
	integration(t)
	for _, c := range []struct {
		telemetry any
		want      string
	}{
		{map[string]any{"exporter": map[string]any{"type": "otlp", "options": map[string]any{"url": "collector:4318"}}}, `/telemetry/exporter/options/url: "collector:4318" is not an http:// or https:// URL`},
		{map[string]any{"exporter": []any{map[string]any{"type": "jaeger"}}}, `/telemetry/exporter/0/type`},
		{map[string]any{"enabled": "perhaps"}, `/telemetry/enabled: "perhaps" is not true or false`},
		{map[string]any{"skip": []any{map[string]any{"path": "/(/"}}}, `/telemetry/skip/0/path`},
	} {
		dir := project(t, map[string]any{
			"entrypoint":   "a",
			"telemetry":    c.telemetry,
			"applications": []any{map[string]any{"id": "a", "path": fixture("apps/plain")}},
		})
		cmd := exec.Command(wattdBin, "start", dir)
		cmd.Env = append(os.Environ(), "WATTD_RUNTIME_DIR="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("wattd started with telemetry %v", c.telemetry)
			continue
		}
		// The file, the line of the value, the JSON path.
		if want := regexp.QuoteMeta(filepath.Join(dir, "watt.json")) + `:\d+: ` + regexp.QuoteMeta(c.want); !regexp.MustCompile(want).Match(out) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// chainSpans waits for the three spans of one call chain at the receiver
// (the entry app's server span, its client span of the mesh call, the
// called app's server span), tells them apart and checks that each is the
// parent of the next, the first a child of callerSpan. what names the
// chain in messages.
func chainSpans(t *testing.T, rcv *receiver, traceID, callerSpan, entry, internal, what string) (server, client, leaf gotSpan) {
	t.Helper()
	var spans []gotSpan
	waitFor(t, 20*time.Second, "3 spans of the "+what+" trace at the receiver", func() bool {
		spans = rcv.trace(traceID)
		return len(spans) >= 3
	})
	if len(spans) != 3 {
		t.Fatalf("%s: got %d spans, want 3", what, len(spans))
	}
	for _, s := range spans {
		switch {
		case s.span.Kind == tracepb.Span_SPAN_KIND_SERVER && s.res["wattd.application.id"] == entry:
			server = s
		case s.span.Kind == tracepb.Span_SPAN_KIND_CLIENT:
			client = s
		case s.span.Kind == tracepb.Span_SPAN_KIND_SERVER && s.res["wattd.application.id"] == internal:
			leaf = s
		}
	}
	if server.span == nil || client.span == nil || leaf.span == nil {
		t.Fatalf("%s: want %s's server span, its client span and %s's server span; got %v", what, entry, internal, spans)
	}
	if server.parent() != callerSpan || client.parent() != server.id() || leaf.parent() != client.id() {
		t.Errorf("%s parents: %s server %s (want %s), client %s (want %s), %s server %s (want %s)",
			what, entry, server.parent(), callerSpan, client.parent(), server.id(), internal, leaf.parent(), client.id())
	}
	return server, client, leaf
}

// TestEntrypointFirstMeshCall: the entrypoint starts once the applications
// it waits for are ready, and its first request may call them at once. Its
// welcome must carry the mesh table as it is then, not the last one pushed
// to the workers, which the pushes' pacing may hold back: with that table
// the first call found "back" still starting in about half the starts.
func TestEntrypointFirstMeshCall(t *testing.T) {
	integration(t)
	app := buildGotrace(t)
	dir := project(t, map[string]any{
		"entrypoint": "front",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{
			map[string]any{"id": "front", "path": app, "workers": 2},
			map[string]any{"id": "back", "path": app},
		},
	})
	for i := range 6 {
		port := freePort(t)
		d := startWattd(t, dir, port, startOpts{})
		waitHTTP(t, d.url("/"), 30*time.Second) // as soon as the entrypoint answers
		code, body, err := get(fresh, d.url("/chain?to=back"))
		if err != nil || code != 200 || body != "leaf back\n" {
			t.Fatalf("start %d: first mesh call: %d %q %v", i+1, code, body, err)
		}
		d.signal(syscall.SIGTERM)
		if c := d.wait(30 * time.Second); c != 0 {
			t.Fatalf("start %d: wattd exit %d", i+1, c)
		}
	}
}
