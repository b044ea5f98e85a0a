package node

// Tests of the preload's tracing and request ids (preload/tracing.cjs): a
// real Node.js worker runs the traced fixture with an app info file that
// turns them on; the test plays wattd (control channel, mesh table) and the
// called app (a Go HTTP server on a Unix socket that answers what it got),
// and reads the spans the worker sends and the log lines it writes.

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/telemetry"
)

// wireSpan is a span the worker sent, in the JSON span form.
type wireSpan struct {
	TraceID       string         `json:"traceId"`
	SpanID        string         `json:"spanId"`
	ParentSpanID  string         `json:"parentSpanId"`
	Name          string         `json:"name"`
	Kind          string         `json:"kind"`
	StartMs       float64        `json:"startMs"`
	EndMs         float64        `json:"endMs"`
	Attributes    map[string]any `json:"attributes"`
	Status        string         `json:"status"`
	StatusMessage string         `json:"statusMessage"`
	// Only in the JSON spans of the application's own (appspans_test.go).
	Events []ipc.SpanEvent `json:"events,omitempty"`
	Links  []ipc.SpanLink  `json:"links,omitempty"`
	Scope  *ipc.SpanScope  `json:"scope,omitempty"`
}

func TestTraceparentParsing(t *testing.T) {
	nodeOrSkip(t)
	const tid, pid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	cases := []struct {
		in      string
		sampled bool // when valid
		valid   bool
	}{
		{"00-" + tid + "-" + pid + "-01", true, true},
		{"00-" + tid + "-" + pid + "-00", false, true},
		{"00-" + tid + "-" + pid + "-03", true, true},  // unknown flags ignored
		{"00-" + tid + "-" + pid + "-02", false, true}, // only bit 0 is sampled
		{"01-" + tid + "-" + pid + "-01-what-the-future-will-be-like", true, true},
		{"cc-" + tid + "-" + pid + "-01", true, true},    // a later version, no more fields
		{"00-" + tid + "-" + pid + "-01-", false, false}, // version 00 is exactly 55 chars
		{"01-" + tid + "-" + pid + "-01x", false, false}, // a later version's extra part starts with "-"
		{"ff-" + tid + "-" + pid + "-01", false, false},  // version ff is invalid
		{"00-" + strings.ToUpper(tid) + "-" + pid + "-01", false, false},
		{"00-00000000000000000000000000000000-" + pid + "-01", false, false},
		{"00-" + tid + "-0000000000000000-01", false, false},
		{"00-" + tid[:31] + "-" + pid + "-01", false, false},
		{"00-" + tid + "-" + pid + "-1", false, false},
		{"00_" + tid + "-" + pid + "-01", false, false},
		{"0g-" + tid + "-" + pid + "-01", false, false},
		{"00-" + tid + "-" + pid + "-0z", false, false},
		{"", false, false},
		{"00-" + tid + "-" + pid + "-01, 00-" + tid + "-" + pid + "-01", false, false}, // two headers joined
	}
	var ins []string
	for _, c := range cases {
		ins = append(ins, c.in)
	}
	arg, _ := json.Marshal(ins)
	mod, _ := filepath.Abs(filepath.Join("preload", "tracecontext.cjs"))
	bin, _ := Binary()
	script := `const tc = require(process.argv[1]); const ins = JSON.parse(process.argv[2]);
const ids = new Set(); const recs = []
for (let i = 0; i < 2000; i++) { const o = tc.takeIds(); const b = tc.idSlab(); recs.push([b, o]); ids.add(tc.hexOf(b, o + tc.TRACE_ID, 16)); ids.add(tc.hexOf(b, o + tc.SPAN_ID, 8)) }
// Records taken earlier keep their ids: a slab is never refilled.
for (const [b, o] of recs) { if (!ids.has(tc.hexOf(b, o + tc.TRACE_ID, 16))) throw new Error('an id changed') }
const o = tc.takeIds(); const b = tc.idSlab()
const fmt = tc.formatTraceparent(tc.hexOf(b, o + tc.TRACE_ID, 16), tc.hexOf(b, o + tc.SPAN_ID, 8), true)
process.stdout.write(JSON.stringify({ parsed: ins.map((s) => tc.parseTraceparent(s)), ids: [...ids], fmt, back: tc.parseTraceparent(fmt) }))`
	out, err := exec.Command(bin, "-e", script, mod, string(arg)).Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	var got struct {
		Parsed []*struct {
			TraceID  string `json:"traceId"`
			ParentID string `json:"parentId"`
			Sampled  bool   `json:"sampled"`
		}
		IDs  []string
		Fmt  string
		Back *struct{ Sampled bool }
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	for i, c := range cases {
		p := got.Parsed[i]
		if !c.valid {
			if p != nil {
				t.Errorf("%q: parsed as %+v, want invalid", c.in, *p)
			}
			continue
		}
		if p == nil || p.TraceID != tid || p.ParentID != pid || p.Sampled != c.sampled {
			t.Errorf("%q: got %+v, want trace %s parent %s sampled %v", c.in, p, tid, pid, c.sampled)
		}
	}
	// New ids: the right length, lower-case hex, never all zeros, no repeats.
	if len(got.IDs) != 4000 {
		t.Errorf("%d distinct ids of 4000", len(got.IDs))
	}
	hexID := regexp.MustCompile(`^(?:[0-9a-f]{16}|[0-9a-f]{32})$`)
	for _, id := range got.IDs {
		if !hexID.MatchString(id) || strings.Trim(id, "0") == "" {
			t.Fatalf("bad id %q", id)
		}
	}
	if got.Back == nil || !got.Back.Sampled {
		t.Errorf("formatTraceparent wrote %q, which does not read back as sampled", got.Fmt)
	}
}

// echoApp is the called app: it answers the trace headers it got.
type echoApp struct {
	path string
	mu   sync.Mutex
	n    int
}

func startEchoApp(t *testing.T, dir string) *echoApp {
	t.Helper()
	e := &echoApp{path: filepath.Join(dir, "internal.sock")}
	ln, err := net.Listen("unix", e.path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.n++
		e.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]string{
			"traceparent": r.Header.Get("Traceparent"),
			"tracestate":  r.Header.Get("Tracestate"),
			"requestId":   r.Header.Get("X-Request-Id"),
			"ids":         fmt.Sprint(len(r.Header.Values("X-Request-Id"))),
		})
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return e
}

// tracedWorker starts the traced fixture with info as its app info file
// (nil: none) and the echo app as "internal" on the mesh.
func tracedWorker(t *testing.T, info map[string]any) (*worker, *echoApp) {
	t.Helper()
	return tracedApp(t, "traced", info)
}

// tracedInfo is the app info of a traced application named id that keeps
// every request (no skip) and takes the request id from x-request-id.
func tracedInfo(id string) map[string]any {
	return map[string]any{
		"applicationId": id,
		"tracing":       map[string]any{"serviceName": id, "skip": []any{}},
		"requestId":     map[string]any{"header": "x-request-id"},
	}
}

// tracedApp is tracedWorker with the fixture app of that name.
func tracedApp(t *testing.T, app string, info map[string]any) (*worker, *echoApp) {
	t.Helper()
	echo := startEchoApp(t, meshDir(t))
	o := workerOpts{app: app, entrypoint: true}
	if info != nil {
		b, _ := json.Marshal(info)
		p := filepath.Join(t.TempDir(), "traced.json")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		o.env = map[string]string{ipc.EnvAppInfo: p}
	}
	w := startWorker(t, o)
	w.handshake()
	w.send(&ipc.Message{Type: ipc.TypeMesh, Mesh: &ipc.MeshTable{Apps: map[string]ipc.MeshApp{
		"internal": {Endpoints: []string{echo.path}, State: "running"},
	}}})
	w.expect(ipc.TypeReady)
	return w, echo
}

// do sends a GET with the given headers and returns the response and body.
func do(t *testing.T, url string, headers map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := tcpClient().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// calleeSaw reads the answer of the fixture's /call: what the echo app got.
func calleeSaw(t *testing.T, body string) map[string]string {
	t.Helper()
	var out struct{ Body string }
	var seen map[string]string
	if json.Unmarshal([]byte(body), &out) != nil || json.Unmarshal([]byte(out.Body), &seen) != nil {
		t.Fatalf("call answered %q", body)
	}
	return seen
}

// spansUntil reads spans until ok says it has all it wants. Only binary
// spans frames may come: the preload's own spans never travel as JSON.
func (w *worker) spansUntil(what string, ok func([]wireSpan) bool) []wireSpan {
	w.t.Helper()
	return w.collectSpans(what, ok, false)
}

// allSpansUntil is spansUntil that also takes JSON spans messages (an
// application's own spans), each of which must pass wattd's checks whole.
func (w *worker) allSpansUntil(what string, ok func([]wireSpan) bool) []wireSpan {
	w.t.Helper()
	return w.collectSpans(what, ok, true)
}

func (w *worker) collectSpans(what string, ok func([]wireSpan) bool, takeJSON bool) []wireSpan {
	w.t.Helper()
	var all []wireSpan
	deadline := time.After(waitLimit)
	for !ok(all) {
		select {
		case body, open := <-w.spans:
			if !open {
				w.t.Fatalf("control channel closed while waiting for %s", what)
			}
			if len(body) == 0 || body[0] != ipc.SpansBinaryTag {
				if !takeJSON {
					w.t.Fatalf("spans message %q is not a binary spans frame", body)
				}
				all = append(all, jsonSpans(w.t, body)...)
				continue
			}
			spans, dropped, err := ipc.DecodeHTTPSpans(body[1:])
			if dropped != 0 || err != nil {
				w.t.Fatalf("binary spans frame: %d spans dropped: %v", dropped, err)
			}
			if len(spans) == 0 || len(spans) > 512 {
				w.t.Errorf("spans message with %d spans", len(spans))
			}
			// As wattd sees them: named and described from the raw fields.
			for _, sp := range telemetry.SpansFromHTTP(spans) {
				all = append(all, wireOf(sp))
			}
		case <-deadline:
			w.t.Fatalf("no %s within %v; spans so far: %+v", what, waitLimit, all)
		}
	}
	return all
}

// jsonSpans decodes a JSON spans message as wattd does; a span it would
// drop fails the test.
func jsonSpans(t *testing.T, body []byte) []wireSpan {
	t.Helper()
	var m ipc.Message
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("spans message %q: %v", body, err)
	}
	spans, dropped, err := ipc.DecodeSpans(m.Spans)
	if dropped != 0 || err != nil {
		t.Fatalf("JSON spans message %s: %d dropped: %v", body, dropped, err)
	}
	out := make([]wireSpan, 0, len(spans))
	for _, s := range spans {
		if s.HTTP != nil {
			// A server span the application added to: as wattd completes it.
			one := []ipc.Span{s}
			w := wireOf(telemetry.SpansFromJSON(one)[0])
			w.Attributes = one[0].Attributes // the derived and the app's, typed
			w.Events, w.Links = s.Events, s.Links
			out = append(out, w)
			continue
		}
		out = append(out, wireSpan{TraceID: s.TraceID, SpanID: s.SpanID, ParentSpanID: s.ParentSpanID, Name: s.Name, Kind: s.Kind,
			StartMs: s.StartMs, EndMs: s.EndMs, Attributes: s.Attributes, Status: s.Status, StatusMessage: s.StatusMessage,
			Events: s.Events, Links: s.Links, Scope: s.Scope})
	}
	return out
}

// wireOf is an OTLP span in the JSON span form the tests compare, with
// integer attributes as JSON numbers.
func wireOf(sp *tracepb.Span) wireSpan {
	w := wireSpan{
		TraceID: hex.EncodeToString(sp.TraceId), SpanID: hex.EncodeToString(sp.SpanId), ParentSpanID: hex.EncodeToString(sp.ParentSpanId),
		Name: sp.Name, StartMs: float64(sp.StartTimeUnixNano) / 1e6, EndMs: float64(sp.EndTimeUnixNano) / 1e6,
		Kind:       map[tracepb.Span_SpanKind]string{tracepb.Span_SPAN_KIND_SERVER: "server", tracepb.Span_SPAN_KIND_CLIENT: "client"}[sp.Kind],
		Attributes: map[string]any{}, Status: "unset",
	}
	for _, kv := range sp.Attributes {
		switch v := kv.Value.Value.(type) {
		case *commonpb.AnyValue_StringValue:
			w.Attributes[kv.Key] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			w.Attributes[kv.Key] = float64(v.IntValue)
		}
	}
	switch sp.Status.GetCode() {
	case tracepb.Status_STATUS_CODE_ERROR:
		w.Status, w.StatusMessage = "error", sp.Status.GetMessage()
	case tracepb.Status_STATUS_CODE_OK:
		w.Status = "ok"
	}
	return w
}

// spansNamed is a spansUntil condition: n spans named name have come.
func spansNamed(name string, n int) func([]wireSpan) bool {
	return func(s []wireSpan) bool {
		k := 0
		for _, x := range s {
			if x.Name == name {
				k++
			}
		}
		return k == n
	}
}

func findSpan(spans []wireSpan, kind, name string) *wireSpan {
	for i := range spans {
		if spans[i].Kind == kind && spans[i].Name == name {
			return &spans[i]
		}
	}
	return nil
}

// logLines reads stdout until n lines with message msg have come.
func (w *worker) logLines(msg string, n int) []map[string]any {
	w.t.Helper()
	var out []map[string]any
	deadline := time.After(waitLimit)
	for len(out) < n {
		select {
		case line, ok := <-w.lines:
			if !ok {
				w.t.Fatalf("stdout closed with %d of %d %q lines", len(out), n, msg)
			}
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
				m["_line"] = line // as written, for what decoding hides (a key given twice)
				out = append(out, m)
			}
		case <-deadline:
			w.t.Fatalf("%d of %d %q lines within %v: %v", len(out), n, msg, waitLimit, out)
		}
	}
	return out
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

const (
	callerTrace = "0af7651916cd43dd8448eb211c80319c"
	callerSpan  = "b7ad6b7169203331"
)

func TestTracing(t *testing.T) {
	onEveryNode(t, testTracing)
}

func testTracing(t *testing.T) {
	w, _ := tracedWorker(t, map[string]any{
		"applicationId": "traced",
		"tracing": map[string]any{"serviceName": "traced-svc", "skip": []any{
			map[string]any{"path": "/health", "method": "GET"},
			map[string]any{"path": "/^\\/skip-[0-9]+$/"},
			map[string]any{"method": "HEAD"}, // every path
		}},
		"requestId": map[string]any{"header": "x-request-id", "response": true},
	})
	base := "http://" + w.tcpAddr

	t.Run("server span from a caller's traceparent", func(t *testing.T) {
		resp, body := do(t, base+"/status?code=201", map[string]string{
			"traceparent": "00-" + callerTrace + "-" + callerSpan + "-01", "x-request-id": "given-1",
		})
		if resp.StatusCode != 201 || body != "status" || resp.Header.Get("X-Request-Id") != "given-1" {
			t.Fatalf("got %d %q, x-request-id %q", resp.StatusCode, body, resp.Header.Get("X-Request-Id"))
		}
		spans := w.spansUntil("the server span", func(s []wireSpan) bool { return findSpan(s, "server", "GET /status") != nil })
		s := findSpan(spans, "server", "GET /status")
		if s.TraceID != callerTrace || s.ParentSpanID != callerSpan || len(s.SpanID) != 16 || s.SpanID == callerSpan {
			t.Errorf("ids: %+v", s)
		}
		if s.Status != "unset" || s.EndMs < s.StartMs || s.StartMs < float64(time.Now().Add(-time.Minute).UnixMilli()) {
			t.Errorf("status or times: %+v", s)
		}
		want := map[string]any{
			"http.request.method": "GET", "url.path": "/status", "url.query": "code=201", "url.scheme": "http",
			"http.response.status_code": 201.0, "server.address": "127.0.0.1",
		}
		for k, v := range want {
			if s.Attributes[k] != v {
				t.Errorf("attribute %s = %#v, want %#v (all: %v)", k, s.Attributes[k], v, s.Attributes)
			}
		}
		if _, ok := s.Attributes["server.port"].(float64); !ok {
			t.Errorf("no server.port: %v", s.Attributes)
		}
	})

	t.Run("new trace, 5xx and 4xx", func(t *testing.T) {
		// An invalid traceparent (upper-case hex) starts a new trace.
		resp, _ := do(t, base+"/status?code=503", map[string]string{
			"traceparent": "00-" + strings.ToUpper(callerTrace) + "-" + callerSpan + "-01",
		})
		if !uuidRE.MatchString(resp.Header.Get("X-Request-Id")) {
			t.Errorf("made request id %q is not a random UUID", resp.Header.Get("X-Request-Id"))
		}
		do(t, base+"/status?code=404", nil)
		spans := w.spansUntil("both spans", spansNamed("GET /status", 2))
		for _, s := range spans {
			switch s.Attributes["http.response.status_code"] {
			case 503.0:
				if s.ParentSpanID != "" || s.TraceID == strings.ToLower(callerTrace) || s.Status != "error" || s.Attributes["error.type"] != "503" {
					t.Errorf("503 span: %+v", s)
				}
			case 404.0:
				if s.Status != "unset" || s.Attributes["error.type"] != nil {
					t.Errorf("404 span (a client error is not the server's): %+v", s)
				}
			}
		}
	})

	t.Run("skip", func(t *testing.T) {
		for _, p := range []string{"/health", "/skip-12"} {
			resp, _ := do(t, base+p, nil)
			if resp.Header.Get("X-Request-Id") == "" {
				t.Errorf("%s: a skipped request still gets its request id", p)
			}
		}
		req, _ := http.NewRequest(http.MethodHead, base+"/status?code=203", nil)
		if resp, err := tcpClient().Do(req); err != nil {
			t.Fatalf("HEAD: %v", err)
		} else {
			resp.Body.Close()
		}
		do(t, base+"/status?code=202", nil) // finishes after them: its span comes last
		spans := w.spansUntil("the marker span", func(s []wireSpan) bool {
			for _, x := range s {
				if x.Attributes["http.response.status_code"] == 202.0 {
					return true
				}
			}
			return false
		})
		for _, s := range spans {
			if s.Name != "GET /status" {
				t.Errorf("span of a skipped request: %+v", s)
			}
		}
	})

	t.Run("long targets, other methods", func(t *testing.T) {
		// A target of 12,008 characters (Node's header limit is 16 KiB),
		// cut to 4096 in url.path and 256 in the name.
		long := "/status/" + strings.Repeat("%C3%A9", 2000)
		req, _ := http.NewRequest("PURGE", base+long+"?code=200", nil)
		resp, err := tcpClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		spans := w.spansUntil("the PURGE span", func(s []wireSpan) bool {
			for _, x := range s {
				if strings.HasPrefix(x.Name, "PURGE ") {
					return true
				}
			}
			return false
		})
		for _, s := range spans {
			if !strings.HasPrefix(s.Name, "PURGE ") {
				continue
			}
			path, _ := s.Attributes["url.path"].(string)
			if len([]rune(s.Name)) != 256 || len([]rune(path)) != 4096 || !strings.HasPrefix(path, "/status/%C3%A9") {
				t.Errorf("name of %d characters, url.path of %d: %.60q", len([]rune(s.Name)), len([]rune(path)), path)
			}
			if s.Attributes["http.request.method"] != "_OTHER" || s.Attributes["http.request.method_original"] != "PURGE" {
				t.Errorf("method attributes %v", s.Attributes)
			}
		}
	})

	t.Run("context through async code and the logger", func(t *testing.T) {
		// Two requests at once, the first finishing last, so their
		// continuations interleave.
		type result struct {
			id, body string
			resp     *http.Response
		}
		res := make(chan result, 2)
		for _, c := range []struct{ tag, ms string }{{"slow", "60"}, {"fast", "1"}} {
			go func() {
				resp, body := do(t, base+"/ctx?tag="+c.tag+"&ms="+c.ms, map[string]string{
					"x-request-id": "id-" + c.tag, "traceparent": "00-" + callerTrace + "-" + callerSpan + "-01",
				})
				res <- result{c.tag, body, resp}
			}()
		}
		for range 2 {
			r := <-res
			if want := `{"reqId":"id-` + r.id + `"}`; r.body != want {
				t.Errorf("%s: body %q, want %q", r.id, r.body, want)
			}
		}
		spans := w.spansUntil("both /ctx spans", spansNamed("GET /ctx", 2))
		spanOf := map[string]string{} // tag -> server span id
		for _, s := range spans {
			if s.Name == "GET /ctx" {
				spanOf[strings.TrimPrefix(s.Attributes["url.query"].(string), "tag=")[:4]] = s.SpanID
			}
		}
		lines := w.logLines("ctx line", 10)
		steps := map[string]int{}
		for _, l := range lines {
			tag, _ := l["tag"].(string)
			steps[tag]++
			if l["reqId"] != "id-"+tag || l["traceId"] != callerTrace || l["spanId"] != spanOf[tag[:4]] {
				t.Errorf("%s line: reqId %v traceId %v spanId %v, want id-%s %s %s", l["step"], l["reqId"], l["traceId"], l["spanId"], tag, callerTrace, spanOf[tag[:4]])
			}
			if l["step"] == "timer" && l["component"] != "child" {
				t.Errorf("child logger line lost its binding: %v", l)
			}
		}
		if steps["slow"] != 5 || steps["fast"] != 5 {
			t.Errorf("lines per request: %v", steps)
		}
	})

	t.Run("mesh calls", func(t *testing.T) {
		for _, via := range []string{"fetch", "get", "request", "client", "undici6", "undici7"} {
			t.Run(via, func(t *testing.T) {
				resp, body := do(t, base+"/call?via="+via, map[string]string{
					"x-request-id": "call-" + via, "traceparent": "00-" + callerTrace + "-" + callerSpan + "-01",
					"tracestate": "vendor=abc",
				})
				if resp.StatusCode != 200 {
					t.Fatalf("call: %d %s", resp.StatusCode, body)
				}
				seen := calleeSaw(t, body)
				spans := w.spansUntil("the call's spans", func(s []wireSpan) bool {
					return findSpan(s, "server", "GET /call") != nil && findSpan(s, "client", "GET http://internal.plt.local/echo") != nil
				})
				server := findSpan(spans, "server", "GET /call")
				client := findSpan(spans, "client", "GET http://internal.plt.local/echo")
				if client.TraceID != callerTrace || client.ParentSpanID != server.SpanID {
					t.Errorf("client span %+v is not the child of server span %+v", client, server)
				}
				if want := "00-" + callerTrace + "-" + client.SpanID + "-01"; seen["traceparent"] != want {
					t.Errorf("callee got traceparent %q, want %q", seen["traceparent"], want)
				}
				if seen["tracestate"] != "vendor=abc" || seen["requestId"] != "call-"+via || seen["ids"] != "1" {
					t.Errorf("callee got %v", seen)
				}
				if client.Status != "unset" || client.EndMs < client.StartMs || client.Attributes["http.response.status_code"] != 200.0 ||
					client.Attributes["url.full"] != "http://internal.plt.local/echo" || client.Attributes["server.address"] != "internal.plt.local" {
					t.Errorf("client span: %+v", client)
				}
				if l := w.logLines("called", 1)[0]; l["reqId"] != "call-"+via || l["traceId"] != callerTrace {
					t.Errorf("log line after the call: %v", l)
				}
			})
		}
	})

	t.Run("an oversized tracestate is cut", func(t *testing.T) {
		// 40 members, one of them 200 characters long: the long one goes
		// first, then members from the end until at most 32 members and
		// 512 characters remain.
		var members []string
		for i := range 40 {
			v := fmt.Sprintf("v%02d=%s", i, strings.Repeat("x", 10))
			if i == 1 {
				v = "long=" + strings.Repeat("y", 200)
			}
			members = append(members, v)
		}
		_, body := do(t, base+"/call?via=fetch", map[string]string{
			"traceparent": "00-" + callerTrace + "-" + callerSpan + "-01",
			"tracestate":  strings.Join(members, ","),
		})
		got := calleeSaw(t, body)["tracestate"]
		want := append([]string{members[0]}, members[2:33]...)
		for len(strings.Join(want, ",")) > 512 {
			want = want[:len(want)-1]
		}
		if got != strings.Join(want, ",") {
			t.Errorf("callee got tracestate %q (%d characters), want %q", got, len(got), strings.Join(want, ","))
		}
	})

	t.Run("the app's own trace headers are kept", func(t *testing.T) {
		_, body := do(t, base+"/call?via=fetch&own=1", map[string]string{"x-request-id": "outer"})
		seen := calleeSaw(t, body)
		if seen["traceparent"] != "00-"+callerTrace+"-"+callerSpan+"-01" || seen["requestId"] != "own-id" || seen["ids"] != "1" {
			t.Errorf("callee got %v, want the app's own traceparent and request id", seen)
		}
	})
}

// TestRequestIDsWithoutTracing: request ids alone make no spans and no
// trace headers; with neither feature on the app's lines and responses are
// untouched.
func TestRequestIDsWithoutTracing(t *testing.T) {
	nodeOrSkip(t)
	t.Run("request ids only", func(t *testing.T) {
		w, _ := tracedWorker(t, map[string]any{"applicationId": "traced", "requestId": map[string]any{"header": "x-request-id", "response": true}})
		resp, body := do(t, "http://"+w.tcpAddr+"/call?via=get", map[string]string{"x-request-id": "alone"})
		if resp.Header.Get("X-Request-Id") != "alone" {
			t.Errorf("response x-request-id %q", resp.Header.Get("X-Request-Id"))
		}
		seen := calleeSaw(t, body)
		if seen["requestId"] != "alone" || seen["traceparent"] != "" {
			t.Errorf("callee got %v, want the request id and no traceparent", seen)
		}
		l := w.logLines("called", 1)[0]
		if l["reqId"] != "alone" || l["traceId"] != nil || l["spanId"] != nil {
			t.Errorf("log line: %v", l)
		}
		select {
		case b := <-w.spans:
			t.Errorf("spans sent with tracing off: %s", b)
		default:
		}
	})
	// As tracing turns them on (the configuration does not name them):
	// kept and passed on, made only when needed, not set on the response.
	t.Run("not on the response unless asked", func(t *testing.T) {
		w, _ := tracedWorker(t, map[string]any{"applicationId": "traced", "requestId": map[string]any{"header": "x-request-id"}})
		resp, body := do(t, "http://"+w.tcpAddr+"/call?via=get", nil)
		if resp.Header.Get("X-Request-Id") != "" {
			t.Errorf("response x-request-id %q, want none", resp.Header.Get("X-Request-Id"))
		}
		seen := calleeSaw(t, body)
		if !uuidRE.MatchString(seen["requestId"]) {
			t.Errorf("callee got request id %q, want a made UUID", seen["requestId"])
		}
		// The line of the same request carries the same made id.
		if l := w.logLines("called", 1)[0]; l["reqId"] != seen["requestId"] {
			t.Errorf("log line reqId %v, the mesh call carried %q", l["reqId"], seen["requestId"])
		}
		resp, _ = do(t, "http://"+w.tcpAddr+"/call?via=fetch", map[string]string{"x-request-id": "kept"})
		if resp.Header.Get("X-Request-Id") != "" {
			t.Errorf("response x-request-id %q, want none", resp.Header.Get("X-Request-Id"))
		}
	})
	t.Run("both off", func(t *testing.T) {
		w, _ := tracedWorker(t, map[string]any{"applicationId": "traced"})
		resp, body := do(t, "http://"+w.tcpAddr+"/call?via=fetch", nil)
		if resp.Header.Get("X-Request-Id") != "" {
			t.Errorf("response x-request-id %q with request ids off", resp.Header.Get("X-Request-Id"))
		}
		seen := calleeSaw(t, body)
		if seen["requestId"] != "" || seen["traceparent"] != "" {
			t.Errorf("callee got %v with both off", seen)
		}
		if l := w.logLines("called", 1)[0]; l["reqId"] != nil || l["traceId"] != nil {
			t.Errorf("log line: %v", l)
		}
	})
}

// TestTracingSampler: the worker applies the sampler wattd read from
// OTEL_TRACES_SAMPLER. A trace the sampler leaves out sends no span but
// keeps its ids, which go on to called apps with the sampled flag off;
// traceidratio decides every trace id exactly as OpenTelemetry's Go SDK.
func TestTracingSampler(t *testing.T) {
	onEveryNode(t, testTracingSampler)
}

func testTracingSampler(t *testing.T) {
	t.Run("parentbased_always_off", func(t *testing.T) {
		w, _ := tracedWorker(t, map[string]any{
			"applicationId": "traced",
			"tracing":       map[string]any{"serviceName": "traced", "skip": []any{}, "sampler": "parentbased_always_off"},
		})
		base := "http://" + w.tcpAddr
		do(t, base+"/status?code=200", nil)
		for _, detached := range []string{"0", "1"} {
			_, body := do(t, base+"/call?via=fetch&detached="+detached, nil)
			seen := calleeSaw(t, body)
			if !regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-00$`).MatchString(seen["traceparent"]) {
				t.Errorf("detached=%s: callee got traceparent %q, want the trace's ids with the sampled flag off", detached, seen["traceparent"])
			}
		}
		_, body := do(t, base+"/call?via=get", map[string]string{"traceparent": "00-" + callerTrace + "-" + callerSpan + "-00"})
		if seen := calleeSaw(t, body); seen["traceparent"] != "" && !strings.HasSuffix(seen["traceparent"], "-00") ||
			!strings.HasPrefix(seen["traceparent"], "00-"+callerTrace+"-") {
			t.Errorf("an unsampled caller's trace: callee got %q", seen["traceparent"])
		}
		// A sampled caller is followed: its span is the one span sent.
		do(t, base+"/status?code=201", map[string]string{"traceparent": "00-" + callerTrace + "-" + callerSpan + "-01"})
		spans := w.spansUntil("the sampled caller's span", func(s []wireSpan) bool { return len(s) > 0 })
		if len(spans) != 1 || spans[0].TraceID != callerTrace || spans[0].Attributes["http.response.status_code"] != 201.0 {
			t.Errorf("spans %+v, want only the sampled caller's", spans)
		}
	})

	t.Run("traceidratio", func(t *testing.T) {
		const ratio = 0.3
		w, _ := tracedWorker(t, map[string]any{
			"applicationId": "traced",
			"tracing":       map[string]any{"serviceName": "traced", "skip": []any{}, "sampler": "traceidratio", "ratio": ratio},
		})
		base := "http://" + w.tcpAddr
		goSampler := sdktrace.TraceIDRatioBased(ratio)
		goSays := func(id trace.TraceID) bool {
			return goSampler.ShouldSample(sdktrace.SamplingParameters{TraceID: id}).Decision == sdktrace.RecordAndSample
		}
		// Trace ids at random, and one either side of the bound; the
		// callers' sampled flags alternate, which traceidratio ignores.
		var ids []trace.TraceID
		for range 80 {
			var id trace.TraceID
			rand.Read(id[:])
			ids = append(ids, id)
		}
		r := ratio // a variable, as in the Go SDK, so the product is a float64's
		bound := uint64(r * (1 << 63))
		for _, x := range []uint64{bound - 1, bound, 0} {
			var id trace.TraceID
			rand.Read(id[:8])
			binary.BigEndian.PutUint64(id[8:], x<<1)
			ids = append(ids, id)
		}
		want := map[string]bool{}
		for i, id := range ids {
			if goSays(id) {
				want[id.String()] = true
			}
			do(t, base+"/status?code=200", map[string]string{"traceparent": fmt.Sprintf("00-%s-%s-0%d", id, callerSpan, i%2)})
		}
		if n := len(want); n < 10 || n > 40 {
			t.Fatalf("%d of %d ids sampled at %v: the ids are not random", n, len(ids), ratio)
		}
		// A last request the sampler keeps: every span is in once it is.
		var last trace.TraceID
		for {
			rand.Read(last[:])
			if goSays(last) {
				break
			}
		}
		do(t, base+"/status?code=202", map[string]string{"traceparent": "00-" + last.String() + "-" + callerSpan + "-00"})
		spans := w.spansUntil("the last request's span", func(s []wireSpan) bool {
			return slices.ContainsFunc(s, func(x wireSpan) bool { return x.TraceID == last.String() })
		})
		got := map[string]bool{}
		for _, s := range spans {
			if s.TraceID != last.String() {
				got[s.TraceID] = true
			}
		}
		if !maps.Equal(got, want) {
			t.Errorf("recorded %d traces, Go's sampler keeps %d:\n got %v\nwant %v", len(got), len(want), got, want)
		}
		if !got[ids[80].String()] || got[ids[81].String()] || !got[ids[82].String()] {
			t.Errorf("the ids either side of the bound were not decided by it: %v %v %v", got[ids[80].String()], got[ids[81].String()], got[ids[82].String()])
		}
	})
}

func TestLoggerOwnRequestID(t *testing.T) {
	onEveryNode(t, testLoggerOwnRequestID)
}

// testLoggerOwnRequestID: a logger whose bindings have a reqId of their
// own (Fastify's request loggers, with globalThis.platformatic.logger as
// their loggerInstance) keeps it; the line gets the request's trace ids
// and no second reqId.
func testLoggerOwnRequestID(t *testing.T) {
	w, _ := tracedWorker(t, tracedInfo("traced"))
	do(t, "http://"+w.tcpAddr+"/ownreq", map[string]string{"traceparent": "00-" + callerTrace + "-" + callerSpan + "-01", "x-request-id": "theirs"})
	line := w.logLines("own reqId", 1)[0]
	raw, _ := line["_line"].(string)
	if strings.Count(raw, `"reqId":`) != 1 || line["reqId"] != "own-1" || line["traceId"] != callerTrace || line["spanId"] == nil {
		t.Errorf("line %s: want its own reqId once, and the request's trace ids", raw)
	}
}
