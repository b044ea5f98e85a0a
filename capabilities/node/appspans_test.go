package node

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wattd/wattd/ipc"
)

func TestApplicationSpans(t *testing.T) {
	onEveryNode(t, testApplicationSpans)
}

// testApplicationSpans: an application's own spans, made with
// globalThis.platformatic.tracerProvider as under Watt, join the request's
// trace: the active one is the parent of the spans and mesh calls made
// inside it, and its id is on the log lines written there.
func testApplicationSpans(t *testing.T) {
	w, _ := tracedWorker(t, tracedInfo("traced"))
	base := "http://" + w.tcpAddr
	resp, body := do(t, base+"/app?via=fetch", map[string]string{
		"traceparent": "00-" + callerTrace + "-" + callerSpan + "-01", "x-request-id": "app-1",
	})
	var got struct {
		Out struct {
			Body string
		}
		Span struct {
			TraceID    string
			SpanID     string
			TraceFlags int
		}
		Recording bool
		Ready     string
		OtelAPI   bool
	}
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &got) != nil {
		t.Fatalf("GET /app: %d %q", resp.StatusCode, body)
	}
	spans := w.allSpansUntil("the request's six spans", func(s []wireSpan) bool { return len(s) >= 6 })
	server, app, inner := findSpan(spans, "server", "GET /app"), findSpan(spans, "internal", "load order"), findSpan(spans, "client", "inner")
	client, root := findSpan(spans, "client", "GET http://internal.plt.local/echo"), findSpan(spans, "internal", "detached root")
	unnamed := findSpan(spans, "internal", "(unnamed)")
	if server == nil || app == nil || inner == nil || client == nil || root == nil || unnamed == nil || len(spans) != 6 {
		t.Fatalf("want the server span, the app's four and the mesh call's; got %+v", spans)
	}
	// A span wattd would refuse as the app made it (no name, a start in
	// year 33658, an end before it) is sent in a form it takes.
	if now := float64(time.Now().UnixMilli()); unnamed.StartMs < now-60e3 || unnamed.StartMs > now || unnamed.EndMs < unnamed.StartMs || len(unnamed.Attributes) != 0 {
		t.Errorf("the unnamed span: %+v", unnamed)
	}
	if app.TraceID != callerTrace || app.ParentSpanID != server.SpanID || inner.ParentSpanID != app.SpanID ||
		client.ParentSpanID != app.SpanID || inner.TraceID != callerTrace || client.TraceID != callerTrace {
		t.Errorf("parents: server %s, app %s (parent %s), inner parent %s, client parent %s", server.SpanID, app.SpanID, app.ParentSpanID, inner.ParentSpanID, client.ParentSpanID)
	}
	if root.TraceID == callerTrace || root.ParentSpanID != "" {
		t.Errorf("root span %+v is in the request's trace", root)
	}
	for _, s := range []*wireSpan{app, inner, root, unnamed} {
		if s.Scope == nil || *s.Scope != (ipc.SpanScope{Name: "fixture", Version: "1.0.0"}) {
			t.Errorf("span %q: scope %+v, want the tracer's fixture 1.0.0", s.Name, s.Scope)
		}
	}
	if server.Scope != nil || client.Scope != nil {
		t.Errorf("wattd's own spans name a scope: %+v, %+v", server.Scope, client.Scope)
	}
	if got.OtelAPI {
		t.Errorf("an app without @opentelemetry/api got the API's global set")
	}
	if got.Ready != "function" {
		t.Errorf("telemetryReady is not a promise: %q", got.Ready)
	}
	if got.Span.TraceID != callerTrace || got.Span.SpanID != app.SpanID || got.Span.TraceFlags != 1 || got.Recording {
		t.Errorf("the app saw span context %+v, recording %v after end; want the sent span's ids, sampled", got.Span, got.Recording)
	}
	var seen map[string]string
	if err := json.Unmarshal([]byte(got.Out.Body), &seen); err != nil {
		t.Fatalf("the callee answered %q", got.Out.Body)
	}
	if seen["traceparent"] != "00-"+callerTrace+"-"+client.SpanID+"-01" || seen["requestId"] != "app-1" {
		t.Errorf("the callee saw %v; want the mesh call's span as its parent and the request's id", seen)
	}
	if app.Status != "error" || app.StatusMessage != "boom" || inner.Status != "unset" {
		t.Errorf("statuses: app %s %q, inner %s", app.Status, app.StatusMessage, inner.Status)
	}
	want := map[string]any{"order.id": int64(42), "step": "one", "list": []int64{1, 2}, "mixed": `[1,"a"]`, "nan": "NaN"}
	for k, v := range want {
		if fmt.Sprintf("%#v", app.Attributes[k]) != fmt.Sprintf("%#v", v) {
			t.Errorf("attribute %s = %#v, want %#v", k, app.Attributes[k], v)
		}
	}
	if big, _ := app.Attributes["big"].(string); len(big) != ipc.MaxAttributeValue {
		t.Errorf("a 5000-character value is %d characters, want it cut to %d", len(big), ipc.MaxAttributeValue)
	}
	for _, k := range []string{"skipped", "late"} {
		if _, ok := app.Attributes[k]; ok {
			t.Errorf("attribute %s was sent: %v", k, app.Attributes)
		}
	}
	if !(server.StartMs <= app.StartMs && app.StartMs <= client.StartMs && client.EndMs <= app.EndMs && app.EndMs <= server.EndMs) {
		t.Errorf("times do not nest: server %v–%v, app %v–%v, client %v–%v", server.StartMs, server.EndMs, app.StartMs, app.EndMs, client.StartMs, client.EndMs)
	}
	if len(app.Events) != 3 || app.Events[0].Name != "cache miss" || app.Events[0].Attributes["key"] != "order:42" ||
		app.Events[0].TimeMs < app.StartMs || app.Events[1].Name != "timed" || app.Events[1].TimeMs != 1764672000000 || app.Events[1].Attributes != nil {
		t.Errorf("events %+v", app.Events)
	} else if ex := app.Events[2]; ex.Name != "exception" || ex.Attributes["exception.type"] != "TypeError" || ex.Attributes["exception.message"] != "bad order" ||
		!strings.HasPrefix(ex.Attributes["exception.stacktrace"].(string), "TypeError: bad order\n    at ") {
		t.Errorf("exception event %+v", ex)
	}
	if len(app.Links) != 1 || app.Links[0].TraceID != "5bf92f3577b34da6a3ce929d0e0e4736" || app.Links[0].SpanID != "20f067aa0ba902b7" || app.Links[0].Attributes["why"] != "batch" {
		t.Errorf("links %+v; want the one valid link", app.Links)
	}
	line := w.logLines("in app span", 1)[0]
	if line["traceId"] != callerTrace || line["spanId"] != app.SpanID || line["reqId"] != "app-1" {
		t.Errorf("log line in the app span: %v", line)
	}

	// Spans too large for one message or even one frame: each keeps its
	// first attributes, the messages stay within the frame limit (a frame
	// over it would fail the worker), and none is lost.
	t.Run("heavy spans", func(t *testing.T) {
		do(t, base+"/app?via=fetch&heavy=1", nil)
		spans := w.allSpansUntil("40 heavy spans", spansNamed("heavy", 40))
		for _, s := range spans {
			if s.Name == "heavy" && (len(s.Attributes) == 0 || len(s.Attributes) >= 64 || s.Attributes["k0"] != strings.Repeat("\u20ac", 4000)) {
				t.Fatalf("heavy span with %d attributes, want its first ones", len(s.Attributes))
			}
			if s.Name == "heavy" && (len(s.Events) == 0 || len(s.Events) >= ipc.MaxSpanEvents || s.Events[0].Name != "e0") {
				t.Fatalf("heavy span with %d events, want its first ones", len(s.Events))
			}
		}
		if resp, _ := do(t, base+"/status?code=200", nil); resp.StatusCode != 200 {
			t.Errorf("the worker answers %d after its heavy spans", resp.StatusCode)
		}
	})

	t.Run("tracing off", func(t *testing.T) {
		w, _ := tracedWorker(t, map[string]any{"applicationId": "traced", "requestId": map[string]any{"header": "x-request-id"}})
		if _, body := do(t, "http://"+w.tcpAddr+"/app?via=fetch", nil); !strings.Contains(body, "no tracerProvider") {
			t.Errorf("with tracing off, /app answered %q", body)
		}
	})
}
