package node

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

func TestOpenTelemetryAPI(t *testing.T) {
	onEveryNode(t, testOpenTelemetryAPI)
}

// remoteTrace and remoteSpan are the fixture's extracted traceparent.
const (
	remoteTrace = "5bf92f3577b34da6a3ce929d0e0e4736"
	remoteSpan  = "20f067aa0ba902b7"
)

// testOpenTelemetryAPI: an application using @opentelemetry/api (its own
// copy, no SDK) sees the request as under Watt: trace.getActiveSpan() is
// the server span, and what it adds to it is exported with the span;
// propagation.inject and extract speak W3C trace context; context.with
// makes a span current for mesh calls and log lines; the API's global
// tracer stays a no-op.
func testOpenTelemetryAPI(t *testing.T) {
	w, _ := tracedApp(t, "otelapi", tracedInfo("otelapi"))
	base := "http://" + w.tcpAddr
	resp, body := do(t, base+"/api?q=1", map[string]string{
		"traceparent": "00-" + callerTrace + "-" + callerSpan + "-01", "tracestate": "caller=1", "x-request-id": "api-1",
	})
	type ids struct {
		TraceID    string
		SpanID     string
		TraceFlags int
	}
	var got struct {
		Active, Global, App, ActiveInside, RemoteChild, Root, Bound *ids
		Recording, GlobalRecording                                  bool
		Injected, InjectedWith, InjectedRemote                      map[string]string
		EchoWith, EchoRemote                                        map[string]string
	}
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &got) != nil {
		t.Fatalf("GET /api: %d %q", resp.StatusCode, body)
	}
	spans := w.allSpansUntil("the request's six spans", func(s []wireSpan) bool { return len(s) >= 6 })
	server := findSpan(spans, "server", "GET /api")
	app, remoteChild, root := findSpan(spans, "internal", "app work"), findSpan(spans, "internal", "remote child"), findSpan(spans, "internal", "explicit root")
	if server == nil || app == nil || remoteChild == nil || root == nil || len(spans) != 6 {
		t.Fatalf("want the server span, three of the app's and two mesh calls; got %+v", spans)
	}
	var clientWith, clientRemote *wireSpan
	for i := range spans {
		if spans[i].Kind == "client" && spans[i].ParentSpanID == app.SpanID {
			clientWith = &spans[i]
		}
		if spans[i].Kind == "client" && spans[i].ParentSpanID == remoteSpan {
			clientRemote = &spans[i]
		}
	}
	if clientWith == nil || clientRemote == nil {
		t.Fatalf("mesh calls: want one under the app span and one under the extracted span; got %+v", spans)
	}

	// The active span is the server span, and what the app added is on it,
	// over what wattd derives for every server span.
	if got.Active == nil || got.Active.TraceID != callerTrace || got.Active.SpanID != server.SpanID || got.Active.TraceFlags != 1 || !got.Recording {
		t.Errorf("trace.getActiveSpan() in the handler: %+v recording %v; want the server span %s", got.Active, got.Recording, server.SpanID)
	}
	if server.ParentSpanID != callerSpan || server.TraceID != callerTrace {
		t.Errorf("server span %s/%s parent %s; want the caller's child", server.TraceID, server.SpanID, server.ParentSpanID)
	}
	for k, v := range map[string]any{
		"user.id": "u1", "user.role": "admin", "http.request.method": "GET", "url.path": "/api", "url.query": "q=1",
		"http.response.status_code": int64(200), "server.address": "127.0.0.1", "url.scheme": "http",
	} {
		if server.Attributes[k] != v {
			t.Errorf("server span attribute %s = %#v, want %#v (all: %v)", k, server.Attributes[k], v, server.Attributes)
		}
	}
	if _, ok := server.Attributes["wattd.none"]; ok || server.Status != "unset" {
		t.Errorf("server span: attributes %v, status %s", server.Attributes, server.Status)
	}
	if len(server.Events) != 2 || server.Events[0].Name != "checked" || server.Events[0].Attributes["ok"] != true ||
		server.Events[1].Name != "exception" || server.Events[1].Attributes["exception.type"] != "RangeError" {
		t.Errorf("server span events %+v", server.Events)
	}
	if len(server.Links) != 1 || server.Links[0].TraceID != remoteTrace || server.Links[0].SpanID != remoteSpan {
		t.Errorf("server span links %+v", server.Links)
	}
	if want := "00-" + callerTrace + "-" + server.SpanID + "-01"; got.Injected["traceparent"] != want || got.Injected["tracestate"] != "caller=1" {
		t.Errorf("propagation.inject in the handler wrote %v, want traceparent %s", got.Injected, want)
	}
	// The API's own tracer: no provider is registered, so its span is a
	// non-recording one carrying the active context, as under Watt.
	if got.Global == nil || got.Global.SpanID != server.SpanID || got.GlobalRecording {
		t.Errorf("the API's global tracer gave %+v recording %v; want a no-op span of the active context", got.Global, got.GlobalRecording)
	}

	// An application span made active is what the API sees inside it;
	// context.with of a context holding it makes it current for mesh
	// calls, propagation and log lines.
	if got.App == nil || got.ActiveInside == nil || *got.ActiveInside != *got.App || app.ParentSpanID != server.SpanID {
		t.Errorf("inside startActiveSpan the API saw %+v, the span is %+v (parent %s)", got.ActiveInside, got.App, app.ParentSpanID)
	}
	if want := "00-" + callerTrace + "-" + app.SpanID + "-01"; got.InjectedWith["traceparent"] != want {
		t.Errorf("inject under context.with wrote %v, want %s", got.InjectedWith, want)
	}
	if got.EchoWith["traceparent"] != "00-"+callerTrace+"-"+clientWith.SpanID+"-01" || got.EchoWith["requestId"] != "api-1" {
		t.Errorf("the callee under context.with saw %v", got.EchoWith)
	}
	line := w.logLines("with app span", 1)[0]
	if line["traceId"] != callerTrace || line["spanId"] != app.SpanID || line["reqId"] != "api-1" {
		t.Errorf("log line under context.with: %v", line)
	}

	// An extracted traceparent is a parent for the app's tracer and, under
	// context.with, for mesh calls, which keep the request's id.
	if remoteChild.TraceID != remoteTrace || remoteChild.ParentSpanID != remoteSpan {
		t.Errorf("span under the extracted context: %+v", remoteChild)
	}
	if clientRemote.TraceID != remoteTrace || got.EchoRemote["traceparent"] != "00-"+remoteTrace+"-"+clientRemote.SpanID+"-01" ||
		got.EchoRemote["tracestate"] != "vendor=1" || got.EchoRemote["requestId"] != "api-1" {
		t.Errorf("the callee under the extracted context saw %v (client span %+v)", got.EchoRemote, clientRemote)
	}
	if got.InjectedRemote["traceparent"] != "00-"+remoteTrace+"-"+remoteSpan+"-01" || got.InjectedRemote["tracestate"] != "vendor=1" {
		t.Errorf("inject under the extracted context wrote %v", got.InjectedRemote)
	}
	// ROOT_CONTEXT given explicitly: a new trace, as the SDK makes it.
	if root.ParentSpanID != "" || root.TraceID == callerTrace {
		t.Errorf("span under ROOT_CONTEXT: %+v", root)
	}
	if got.Bound == nil || got.Bound.SpanID != server.SpanID {
		t.Errorf("context.bind gave active span %+v, want the server span", got.Bound)
	}

	// A renamed span with an OK status on a 500: the app's name and status
	// stand; wattd's attributes are still there.
	do(t, base+"/rename", nil)
	renamed := w.allSpansUntil("the renamed span", func(s []wireSpan) bool { return len(s) >= 1 })
	if r := renamed[0]; r.Name != "custom name" || r.Kind != "server" || r.Status != "ok" || r.Attributes["http.response.status_code"] != int64(500) || r.Attributes["url.path"] != "/rename" {
		t.Errorf("renamed span %+v", r)
	}
	// A request whose span nobody touched goes the binary way.
	do(t, base+"/plain", nil)
	plain := w.spansUntil("the plain request's span", func(s []wireSpan) bool { return len(s) >= 1 })
	if plain[0].Name != "GET /plain" {
		t.Errorf("plain request's span %+v", plain[0])
	}
}

func TestOpenTelemetrySDKOfTheApp(t *testing.T) {
	onEveryNode(t, testOpenTelemetrySDKOfTheApp)
}

// testOpenTelemetrySDKOfTheApp: an application that sets up OpenTelemetry's
// SDK itself keeps its tracer provider and exporter; its spans are
// children of the request's server span, and a mesh call made in one of
// them is that span's child.
func testOpenTelemetrySDKOfTheApp(t *testing.T) {
	w, _ := tracedApp(t, "otelsdk", map[string]any{
		"applicationId": "otelsdk",
		"tracing":       map[string]any{"serviceName": "otelsdk", "skip": []any{}},
	})
	resp, body := do(t, "http://"+w.tcpAddr+"/sdk", map[string]string{"traceparent": "00-" + callerTrace + "-" + callerSpan + "-01"})
	type ids struct{ TraceID, SpanID string }
	var got struct {
		Active, SDK *ids
		Echo        map[string]string
		Injected    map[string]string
		Exported    []struct{ Name, SpanID, ParentSpanID string }
	}
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &got) != nil {
		t.Fatalf("GET /sdk: %d %q", resp.StatusCode, body)
	}
	spans := w.spansUntil("the server span and the mesh call's", func(s []wireSpan) bool { return len(s) >= 2 })
	server, client := findSpan(spans, "server", "GET /sdk"), findSpan(spans, "client", "GET http://internal.plt.local/echo")
	if server == nil || client == nil {
		t.Fatalf("spans %+v", spans)
	}
	if got.Active == nil || got.Active.SpanID != server.SpanID || got.SDK == nil || got.SDK.TraceID != callerTrace {
		t.Fatalf("active span %+v, SDK span %+v; want the server span %s, and the SDK's in its trace", got.Active, got.SDK, server.SpanID)
	}
	if len(got.Exported) != 1 || got.Exported[0].Name != "sdk work" || got.Exported[0].SpanID != got.SDK.SpanID || got.Exported[0].ParentSpanID != server.SpanID {
		t.Errorf("the SDK exported %+v; want its span, the server span's child", got.Exported)
	}
	if client.ParentSpanID != got.SDK.SpanID || got.Echo["traceparent"] != "00-"+callerTrace+"-"+client.SpanID+"-01" {
		t.Errorf("mesh call %+v, callee saw %v; want the SDK span's child", client, got.Echo)
	}
	if got.Injected["traceparent"] != "00-"+callerTrace+"-"+got.SDK.SpanID+"-01" {
		t.Errorf("inject inside the SDK span wrote %v", got.Injected)
	}

	// A call the SDK makes with tracing suppressed (as its exporters do)
	// is no span and carries no trace context.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "traceparent="+r.Header.Get("Traceparent"))
	}))
	defer other.Close()
	if _, body := do(t, "http://"+w.tcpAddr+"/suppressed?url="+url.QueryEscape(other.URL+"/export"), nil); body != "traceparent=" {
		t.Errorf("a suppressed call carried %q", body)
	}
	if spans := w.spansUntil("the suppressed request's span", func(s []wireSpan) bool { return len(s) >= 1 }); len(spans) != 1 || spans[0].Kind != "server" {
		t.Errorf("spans of the suppressed call's request: %+v", spans)
	}
}
