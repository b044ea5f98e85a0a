package telemetry

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/wattd/wattd/ipc"
)

// attrMap renders OTLP attributes as key -> "value" for comparisons.
func attrMap(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		switch v := kv.Value.Value.(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.Key] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.Key] = fmt.Sprint(v.IntValue)
		case *commonpb.AnyValue_DoubleValue:
			m[kv.Key] = fmt.Sprint(v.DoubleValue)
		case *commonpb.AnyValue_BoolValue:
			m[kv.Key] = fmt.Sprint(v.BoolValue)
		}
	}
	return m
}

func TestJSONSpanToOTLPAndSDK(t *testing.T) {
	sp := ipc.Span{
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7", ParentSpanID: "10f067aa0ba902b7",
		Name: "GET /users", Kind: ipc.SpanKindClient, StartMs: 1764672000123.456, EndMs: 1764672000125.789,
		Attributes: map[string]any{"s": "v", "i": int64(200), "f": 0.5, "b": true},
		Status:     ipc.SpanStatusError, StatusMessage: "boom",
	}
	out := spansFromJSON([]ipc.Span{sp, {TraceID: sp.TraceID, SpanID: "00f067aa0ba902b8", Name: "root", Kind: "internal", StartMs: 1, EndMs: 2, Status: ipc.SpanStatusOK}})
	if len(out) != 2 {
		t.Fatalf("%d spans", len(out))
	}
	pb := out[0]
	if hex.EncodeToString(pb.TraceId) != sp.TraceID || hex.EncodeToString(pb.SpanId) != sp.SpanID || hex.EncodeToString(pb.ParentSpanId) != sp.ParentSpanID {
		t.Errorf("ids %x %x %x", pb.TraceId, pb.SpanId, pb.ParentSpanId)
	}
	if pb.Name != "GET /users" || pb.Kind != tracepb.Span_SPAN_KIND_CLIENT || pb.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR || pb.Status.GetMessage() != "boom" {
		t.Errorf("name %q kind %v status %v", pb.Name, pb.Kind, pb.Status)
	}
	if pb.StartTimeUnixNano != 1764672000123456000 || pb.EndTimeUnixNano != 1764672000125789000 {
		t.Errorf("times %d %d", pb.StartTimeUnixNano, pb.EndTimeUnixNano)
	}
	var keys []string
	for _, kv := range pb.Attributes {
		keys = append(keys, kv.Key)
	}
	if fmt.Sprint(keys) != "[b f i s]" || fmt.Sprint(attrMap(pb.Attributes)) != "map[b:true f:0.5 i:200 s:v]" {
		t.Errorf("attributes %v %v", keys, attrMap(pb.Attributes))
	}
	if len(out[1].Attributes) != 0 || out[1].ParentSpanId != nil || out[1].Status.GetCode() != tracepb.Status_STATUS_CODE_OK {
		t.Errorf("second span %v", out[1])
	}
	if _, err := proto.Marshal(&tracepb.ScopeSpans{Spans: out}); err != nil {
		t.Fatal(err)
	}

	// The SDK's form, for the console and file exporters.
	res := resource.NewSchemaless(attribute.String("service.name", "x"))
	ro := ReadOnly(pb, res)
	if ro.SpanContext().TraceID().String() != sp.TraceID || ro.SpanContext().SpanID().String() != sp.SpanID ||
		ro.Parent().SpanID().String() != sp.ParentSpanID || ro.Parent().TraceID().String() != sp.TraceID || !ro.SpanContext().IsSampled() {
		t.Errorf("ids: %v parent %v", ro.SpanContext(), ro.Parent())
	}
	if ro.Name() != "GET /users" || ro.SpanKind() != trace.SpanKindClient || ro.Resource() != res {
		t.Errorf("name %q kind %v resource %v", ro.Name(), ro.SpanKind(), ro.Resource())
	}
	start := time.UnixMilli(1764672000123).Add(456 * time.Microsecond)
	if !ro.StartTime().Equal(start) || ro.EndTime().Sub(ro.StartTime()) != 2333*time.Microsecond {
		t.Errorf("start %v end %v", ro.StartTime(), ro.EndTime())
	}
	want := []attribute.KeyValue{attribute.Bool("b", true), attribute.Float64("f", 0.5), attribute.Int64("i", 200), attribute.String("s", "v")}
	if fmt.Sprint(ro.Attributes()) != fmt.Sprint(want) {
		t.Errorf("attributes %v, want %v", ro.Attributes(), want)
	}
	if ro.Status().Code != codes.Error || ro.Status().Description != "boom" {
		t.Errorf("status %+v", ro.Status())
	}
	if ro := ReadOnly(out[1], res); ro.Parent().IsValid() || ro.Status().Code != codes.Ok {
		t.Errorf("root: parent %v status %+v", ro.Parent(), ro.Status())
	}
}

// TestHTTPSpans: a binary frame's records become spans with the name,
// attributes and status of OpenTelemetry's HTTP conventions.
func TestHTTPSpans(t *testing.T) {
	mk := func(kind, flags byte, status uint16, method, target, host string, port uint16) ipc.HTTPSpan {
		s := ipc.HTTPSpan{Kind: kind, Flags: flags, Status: status, Port: port, StartMs: 1764672000123.5, EndMs: 1764672000124.25,
			Method: method, Target: target, Host: host}
		s.TraceID[0], s.SpanID[0] = 1, 2
		if flags&ipc.SpanBinParent != 0 {
			s.ParentSpanID[7] = 3
		}
		return s
	}
	cases := []struct {
		in        ipc.HTTPSpan
		name      string
		kind      tracepb.Span_SpanKind
		attrs     string
		errStatus string // "" for unset
		remote    bool
	}{
		{mk(ipc.SpanBinServer, 0, 200, "GET", "/users?id=1", "api.example:8443", 0), "GET /users", tracepb.Span_SPAN_KIND_SERVER,
			"map[http.request.method:GET http.response.status_code:200 server.address:api.example server.port:8443 url.path:/users url.query:id=1 url.scheme:http]", "", false},
		{mk(ipc.SpanBinServer, ipc.SpanBinParent|ipc.SpanBinTLS, 503, "POST", "/x?", "[::1]", 0), "POST /x", tracepb.Span_SPAN_KIND_SERVER,
			"map[error.type:503 http.request.method:POST http.response.status_code:503 server.address:[::1] url.path:/x url.scheme:https]", "-", true},
		{mk(ipc.SpanBinServer, ipc.SpanBinIncomplete, 200, "PURGE", "/", "", 0), "PURGE /", tracepb.Span_SPAN_KIND_SERVER,
			"map[error.type:incomplete http.request.method:_OTHER http.request.method_original:PURGE http.response.status_code:200 url.path:/ url.scheme:http]", msgIncomplete, false},
		{mk(ipc.SpanBinServer, 0, 404, "GET", "/missing", "h", 0), "GET /missing", tracepb.Span_SPAN_KIND_SERVER,
			"map[http.request.method:GET http.response.status_code:404 server.address:h url.path:/missing url.scheme:http]", "", false},
		{mk(ipc.SpanBinClient, ipc.SpanBinParent, 404, "GET", "http://db.plt.local/rows", "db.plt.local", 80), "GET http://db.plt.local/rows", tracepb.Span_SPAN_KIND_CLIENT,
			"map[error.type:404 http.request.method:GET http.response.status_code:404 server.address:db.plt.local server.port:80 url.full:http://db.plt.local/rows]", "-", false},
		{mk(ipc.SpanBinClient, 0, 0, "PUT", "http://db.plt.local/", "db.plt.local", 80), "PUT http://db.plt.local/", tracepb.Span_SPAN_KIND_CLIENT,
			"map[error.type:_OTHER http.request.method:PUT server.address:db.plt.local server.port:80 url.full:http://db.plt.local/]", msgNoResponse, false},
		// A call to another host is named by its method only.
		{mk(ipc.SpanBinClient, ipc.SpanBinParent, 200, "POST", "https://pay.example:8443/charge", "pay.example", 8443), "POST", tracepb.Span_SPAN_KIND_CLIENT,
			"map[http.request.method:POST http.response.status_code:200 server.address:pay.example server.port:8443 url.full:https://pay.example:8443/charge]", "", false},
	}
	in := make([]ipc.HTTPSpan, len(cases))
	for i, c := range cases {
		in[i] = c.in
	}
	m, err := ipc.ReadMessage(bytes.NewReader(ipc.AppendHTTPSpans(nil, in)))
	if err != nil || m.Type != ipc.TypeSpans || m.SpansBinary == nil {
		t.Fatalf("read: %v %+v", err, m)
	}
	decoded, dropped, err := ipc.DecodeHTTPSpans(m.SpansBinary)
	if dropped != 0 || err != nil {
		t.Fatalf("dropped %d: %v", dropped, err)
	}
	out := SpansFromHTTP(decoded)
	for i, c := range cases {
		sp := out[i]
		if sp.Name != c.name || sp.Kind != c.kind || fmt.Sprint(attrMap(sp.Attributes)) != c.attrs {
			t.Errorf("%d: %q %v %v\nwant %q %v %s", i, sp.Name, sp.Kind, attrMap(sp.Attributes), c.name, c.kind, c.attrs)
		}
		switch {
		case c.errStatus == "" && sp.Status != nil:
			t.Errorf("%d: status %v, want unset", i, sp.Status)
		case c.errStatus != "" && (sp.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR || (c.errStatus != "-" && sp.Status.GetMessage() != c.errStatus)):
			t.Errorf("%d: status %v, want error %q", i, sp.Status, c.errStatus)
		}
		if remote := sp.Flags&flagsIsRemote != 0; remote != c.remote || sp.Flags&flagsHasIsRemote == 0 {
			t.Errorf("%d: flags %x, remote parent %v", i, sp.Flags, c.remote)
		}
		if sp.StartTimeUnixNano != 1764672000123500000 || sp.EndTimeUnixNano != 1764672000124250000 || sp.TraceId[0] != 1 || sp.SpanId[0] != 2 {
			t.Errorf("%d: times or ids %v", i, sp)
		}
		if (c.in.Flags&ipc.SpanBinParent != 0) != (len(sp.ParentSpanId) == 8) {
			t.Errorf("%d: parent %x", i, sp.ParentSpanId)
		}
	}
	if _, err := proto.Marshal(&tracepb.ScopeSpans{Spans: out}); err != nil {
		t.Fatal(err)
	}
	keys := []string{}
	for _, kv := range out[0].Attributes {
		keys = append(keys, kv.Key)
	}
	if !sort.StringsAreSorted(keys) && len(keys) != 7 {
		t.Errorf("keys %v", keys)
	}
}

// TestHTTPSpansClipAndUTF8: names and values are cut to their limits on
// a character boundary, and invalid UTF-8 is replaced so that the export
// stays valid protobuf.
func TestHTTPSpansClipAndUTF8(t *testing.T) {
	long := "/" + string(bytes.Repeat([]byte("é"), ipc.MaxAttributeValue))
	s := ipc.HTTPSpan{Kind: ipc.SpanBinServer, Status: 200, StartMs: 1, EndMs: 2, Method: "GET", Target: long, Host: "h\xff"}
	s.TraceID[0], s.SpanID[0] = 1, 1
	decoded, dropped, err := ipc.DecodeHTTPSpans(ipc.AppendHTTPSpans(nil, []ipc.HTTPSpan{s})[5:])
	if dropped != 0 {
		t.Fatal(err)
	}
	sp := SpansFromHTTP(decoded)[0]
	a := attrMap(sp.Attributes)
	if n := len([]rune(sp.Name)); n != ipc.MaxSpanName {
		t.Errorf("name of %d characters", n)
	}
	if n := len([]rune(a["url.path"])); n != ipc.MaxAttributeValue {
		t.Errorf("url.path of %d characters", n)
	}
	if a["server.address"] != "h\uFFFD" {
		t.Errorf("server.address %q", a["server.address"])
	}
	if _, err := proto.Marshal(sp); err != nil {
		t.Fatal(err)
	}
}

// TestWireEqualsObjects: the protobuf bytes the OTLP exporters get for HTTP
// spans parse back into exactly the spans SpansFromHTTP builds as objects.
func TestWireEqualsObjects(t *testing.T) {
	var in []ipc.HTTPSpan
	for i, c := range []struct {
		kind, flags byte
		status      uint16
		method      string
		target      string
		host        string
		port        uint16
	}{
		{ipc.SpanBinServer, 0, 200, "GET", "/users?id=1", "api.example:8443", 0},
		{ipc.SpanBinServer, ipc.SpanBinParent | ipc.SpanBinTLS, 503, "POST", "/x", "[::1]:80", 0},
		{ipc.SpanBinServer, ipc.SpanBinIncomplete, 0, "PURGE", "/é", "", 0},
		{ipc.SpanBinClient, ipc.SpanBinParent, 404, "GET", "http://db.plt.local/rows", "db.plt.local", 80},
		{ipc.SpanBinClient, 0, 0, "PUT", "http://db.plt.local/", "db.plt.local", 8080},
	} {
		s := ipc.HTTPSpan{Kind: c.kind, Flags: c.flags, Status: c.status, Port: c.port, StartMs: 1764672000123.5 + float64(i), EndMs: 1764672000124.25 + float64(i),
			Method: c.method, Target: c.target, Host: c.host}
		s.TraceID[0], s.SpanID[0], s.SpanID[7] = 1, 2, byte(i+1)
		if c.flags&ipc.SpanBinParent != 0 {
			s.ParentSpanID[7] = 3
		}
		in = append(in, s)
	}
	decoded, _, err := ipc.DecodeHTTPSpans(ipc.AppendHTTPSpans(nil, in)[5:])
	if err != nil {
		t.Fatal(err)
	}
	want := &tracepb.ScopeSpans{Scope: scopePB, Spans: SpansFromHTTP(decoded)}

	var w wireWriter
	for i := range decoded {
		describeHTTP(&decoded[i], &w)
	}
	ss := &tracepb.ScopeSpans{Scope: scopePB}
	ss.ProtoReflect().SetUnknown(w.out)
	raw, err := proto.Marshal(ss)
	if err != nil {
		t.Fatal(err)
	}
	got := &tracepb.ScopeSpans{}
	if err := proto.Unmarshal(raw, got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, want) {
		t.Errorf("wire form differs:\n got %v\nwant %v", got, want)
	}
	if len(got.Spans) != len(in) || len(got.ProtoReflect().GetUnknown()) != 0 {
		t.Errorf("%d spans, %d unknown bytes", len(got.Spans), len(got.ProtoReflect().GetUnknown()))
	}
}

// TestJSONSpanEventsAndLinks: a JSON span's events and links reach the
// OTLP form and the SDK's (console, file, zipkin).
func TestJSONSpanEventsAndLinks(t *testing.T) {
	sp := ipc.Span{
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7", Name: "load", Kind: "internal",
		StartMs: 1764672000000, EndMs: 1764672000010,
		Events: []ipc.SpanEvent{
			{Name: "exception", TimeMs: 1764672000004.5, Attributes: map[string]any{"exception.message": "no", "n": int64(2)}},
			{Name: "retry", TimeMs: 1764672000006},
		},
		Links:      []ipc.SpanLink{{TraceID: "5bf92f3577b34da6a3ce929d0e0e4736", SpanID: "20f067aa0ba902b7", Attributes: map[string]any{"why": "batch"}}},
		Attributes: map[string]any{"tags": []string{"a", "b"}, "ids": []int64{1, 2}, "ratios": []float64{0.5}, "flags": []bool{true, false}},
	}
	pb := spansFromJSON([]ipc.Span{sp})[0]
	if len(pb.Events) != 2 || pb.Events[0].Name != "exception" || pb.Events[0].TimeUnixNano != 1764672000004500000 ||
		fmt.Sprint(attrMap(pb.Events[0].Attributes)) != "map[exception.message:no n:2]" || pb.Events[1].Attributes != nil {
		t.Errorf("OTLP events %v", pb.Events)
	}
	if len(pb.Links) != 1 || hex.EncodeToString(pb.Links[0].TraceId) != sp.Links[0].TraceID || hex.EncodeToString(pb.Links[0].SpanId) != sp.Links[0].SpanID ||
		attrMap(pb.Links[0].Attributes)["why"] != "batch" {
		t.Errorf("OTLP links %v", pb.Links)
	}
	ro := ReadOnly(pb, resource.Empty())
	ev := ro.Events()
	if len(ev) != 2 || ev[0].Name != "exception" || !ev[0].Time.Equal(time.Unix(0, 1764672000004500000)) || len(ev[0].Attributes) != 2 {
		t.Errorf("SDK events %+v", ev)
	}
	ln := ro.Links()
	if len(ln) != 1 || ln[0].SpanContext.TraceID().String() != sp.Links[0].TraceID || ln[0].SpanContext.SpanID().String() != sp.Links[0].SpanID ||
		len(ln[0].Attributes) != 1 || ln[0].Attributes[0] != attribute.String("why", "batch") {
		t.Errorf("SDK links %+v", ln)
	}
	lists := map[string]string{}
	for _, kv := range ro.Attributes() {
		lists[string(kv.Key)] = kv.Value.Type().String() + " " + kv.Value.Emit()
	}
	if fmt.Sprint(lists) != `map[flags:BOOLSLICE [true false] ids:INT64SLICE [1,2] ratios:FLOAT64SLICE [0.5] tags:STRINGSLICE ["a","b"]]` {
		t.Errorf("SDK list attributes %v", lists)
	}
	for _, kv := range pb.Attributes {
		if kv.Key == "ids" && len(kv.Value.GetArrayValue().GetValues()) != 2 {
			t.Errorf("OTLP list attribute %v", kv)
		}
	}
	z := zipkinSpan(ro, nil)
	if z.Tags["tags"] != `["a","b"]` || z.Tags["ids"] != "[1,2]" || z.Tags["flags"] != "[true,false]" {
		t.Errorf("zipkin list tags %v", z.Tags)
	}
	if len(z.Annotations) != 2 || z.Annotations[1].Value != "retry" || !strings.Contains(z.Annotations[0].Value, `"exception.message":"no"`) {
		t.Errorf("zipkin annotations %+v", z.Annotations)
	}
}

// TestJSONServerSpanWithHTTP: a JSON server span that carries its request
// gets what a binary one gets (name, attributes, status), under what the
// span carries itself.
func TestJSONServerSpanWithHTTP(t *testing.T) {
	base := ipc.Span{
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7", ParentSpanID: "10f067aa0ba902b7", Kind: "server",
		StartMs: 1764672000000, EndMs: 1764672000010, Status: ipc.SpanStatusUnset,
		HTTP: &ipc.SpanHTTP{Method: "GET", Target: "/users?id=1", Host: "api.example:8080", Status: 503},
	}
	derived := base
	derived.Attributes = map[string]any{"user.id": "u1", "url.path": "/mine"}
	named := base
	named.Name, named.Status = "list users", ipc.SpanStatusOK
	named.HTTP = &ipc.SpanHTTP{Method: "GET", Target: "/users", Status: 200, TLS: true, Incomplete: true}
	out := spansFromJSON([]ipc.Span{derived, named})
	d, n := out[0], out[1]
	if d.Name != "GET /users" || d.Flags != flagsHasIsRemote|flagsIsRemote {
		t.Errorf("derived span: name %q, flags %x", d.Name, d.Flags)
	}
	want := "map[error.type:503 http.request.method:GET http.response.status_code:503 server.address:api.example server.port:8080 url.path:/mine url.query:id=1 url.scheme:http user.id:u1]"
	if got := fmt.Sprint(attrMap(d.Attributes)); got != want {
		t.Errorf("derived span attributes\n got %s\nwant %s", got, want)
	}
	if d.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("a 503 with no status of the app's: %v", d.Status)
	}
	// The app's name and OK stand, over an incomplete response.
	if n.Name != "list users" || n.Status.GetCode() != tracepb.Status_STATUS_CODE_OK || attrMap(n.Attributes)["url.scheme"] != "https" || attrMap(n.Attributes)["error.type"] != "incomplete" {
		t.Errorf("named span: %q %v %v", n.Name, n.Status, attrMap(n.Attributes))
	}
}

// TestHTTPSpanPort: a Host header's port is server.port only when it is
// one, 0 to 65535 in decimal digits, in a binary span as in a JSON one.
func TestHTTPSpanPort(t *testing.T) {
	for host, want := range map[string]string{
		"h:8080": "8080", "h:65535": "65535", "h:65536": "", "h:99999999999999999999": "", "h:-1": "", "h:+80": "", "h:": "", "[::1]:443": "443",
	} {
		s := ipc.HTTPSpan{Kind: ipc.SpanBinServer, Status: 200, StartMs: 1764672000123, EndMs: 1764672000124, Method: "GET", Target: "/", Host: host}
		s.TraceID[0], s.SpanID[0] = 1, 2
		decoded, _, err := ipc.DecodeHTTPSpans(ipc.AppendHTTPSpans(nil, []ipc.HTTPSpan{s})[5:])
		if err != nil {
			t.Fatal(err)
		}
		got := attrMap(SpansFromHTTP(decoded)[0].Attributes)
		if got["server.port"] != want {
			t.Errorf("Host %q: server.port %q, want %q", host, got["server.port"], want)
		}
		js := fmt.Sprintf(`[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","kind":"server","startMs":1764672000123,"endMs":1764672000124,"http":{"method":"GET","target":"/","host":%q,"status":200}}]`, host)
		spans, _, err := ipc.DecodeSpans([]byte(js))
		if err != nil || len(spans) != 1 {
			t.Fatalf("JSON span: %v", err)
		}
		if got := attrMap(SpansFromJSON(spans)[0].Attributes); got["server.port"] != want {
			t.Errorf("JSON Host %q: server.port %q, want %q", host, got["server.port"], want)
		}
	}
}

// TestJSONSpanParentRemote: a span sent as JSON has a remote parent
// (OTLP's is_remote) only when it says so: an application's own span is
// the child of a span of the same process (its request's server span),
// and a backend that finds a service's entry spans by a remote parent
// would otherwise take each of them for one.
func TestJSONSpanParentRemote(t *testing.T) {
	base := ipc.Span{
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7", ParentSpanID: "10f067aa0ba902b7", Kind: "internal",
		StartMs: 1764672000000, EndMs: 1764672000010, Status: ipc.SpanStatusUnset,
	}
	remote := base
	remote.ParentRemote = true
	root := base
	root.ParentSpanID = ""
	for i, c := range []struct {
		in   ipc.Span
		want uint32
	}{{base, flagsHasIsRemote}, {remote, flagsHasIsRemote | flagsIsRemote}, {root, flagsHasIsRemote}} {
		if got := spansFromJSON([]ipc.Span{c.in})[0].Flags; got != c.want {
			t.Errorf("%d: flags %x, want %x", i, got, c.want)
		}
	}
	// On the wire: "parentRemote" is read, and means nothing without a
	// parent.
	for raw, want := range map[string]bool{
		`{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","parentSpanId":"10f067aa0ba902b7","parentRemote":true,"name":"x","kind":"internal","startMs":1,"endMs":2}`: true,
		`{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","parentRemote":true,"name":"x","kind":"internal","startMs":1,"endMs":2}`:                                   false,
	} {
		s, err := ipc.DecodeSpan(json.RawMessage(raw))
		if err != nil || s.ParentRemote != want {
			t.Errorf("%s: ParentRemote %v (%v), want %v", raw, s.ParentRemote, err, want)
		}
	}
}
