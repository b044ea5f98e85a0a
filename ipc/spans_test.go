package ipc

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

const goodSpan = `{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7",
	"parentSpanId":"10f067aa0ba902b7","name":"GET /users","kind":"server",
	"startMs":1764672000123.456,"endMs":1764672000125.789,
	"attributes":{"http.request.method":"GET","http.response.status_code":200,"ratio":0.5,"big":1e3,"ok":true,
		"tags":["a","b"],"ids":[1,2],"mix":[1,2.5],"flags":[true],"none":[]},
	"status":"error","statusMessage":"boom",
	"events":[{"name":"exception","timeMs":1764672000124.5,"attributes":{"exception.message":"no","count":2}},{"name":"cache miss","timeMs":1764672000124.75}],
	"links":[{"traceId":"5bf92f3577b34da6a3ce929d0e0e4736","spanId":"20f067aa0ba902b7","attributes":{"why":"batch"}}],
	"scope":{"name":"orders","version":"1.0.0"}}`

func TestDecodeSpan(t *testing.T) {
	s, err := DecodeSpan(json.RawMessage(goodSpan))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"http.request.method": "GET", "http.response.status_code": int64(200), "ratio": 0.5, "big": 1000.0, "ok": true,
		"tags": []string{"a", "b"}, "ids": []int64{1, 2}, "mix": []float64{1, 2.5}, "flags": []bool{true}, "none": []string{}}
	if fmt.Sprint(s.Attributes) != fmt.Sprint(want) {
		t.Errorf("attributes %#v, want %#v", s.Attributes, want)
	}
	for k, v := range want {
		if fmt.Sprintf("%T", s.Attributes[k]) != fmt.Sprintf("%T", v) {
			t.Errorf("attribute %s is a %T, want %T", k, s.Attributes[k], v)
		}
	}
	if s.StartMs != 1764672000123.456 || s.Status != SpanStatusError || s.StatusMessage != "boom" || s.ParentSpanID != "10f067aa0ba902b7" {
		t.Errorf("span %+v", s)
	}
	if len(s.Events) != 2 || s.Events[0].Name != "exception" || s.Events[0].TimeMs != 1764672000124.5 ||
		s.Events[0].Attributes["count"] != int64(2) || s.Events[1].Attributes != nil {
		t.Errorf("events %+v", s.Events)
	}
	if s.Scope == nil || *s.Scope != (SpanScope{Name: "orders", Version: "1.0.0"}) {
		t.Errorf("scope %+v", s.Scope)
	}
	if len(s.Links) != 1 || s.Links[0].TraceID != "5bf92f3577b34da6a3ce929d0e0e4736" || s.Links[0].SpanID != "20f067aa0ba902b7" || s.Links[0].Attributes["why"] != "batch" {
		t.Errorf("links %+v", s.Links)
	}
	root, err := DecodeSpan(json.RawMessage(`{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","name":"x","kind":"client","startMs":1,"endMs":1}`))
	if err != nil || root.Status != SpanStatusUnset || root.ParentSpanID != "" {
		t.Errorf("root span without status: %+v %v", root, err)
	}
}

// TestDecodeSpanInvalid: each rule of the spans message, broken alone.
func TestDecodeSpanInvalid(t *testing.T) {
	var base map[string]any
	if err := json.Unmarshal([]byte(goodSpan), &base); err != nil {
		t.Fatal(err)
	}
	many := map[string]any{}
	for i := range MaxSpanAttributes + 1 {
		many[fmt.Sprint("k", i)] = i
	}
	tests := []struct {
		field string
		value any // nil deletes the field
		why   string
	}{
		{"traceId", "00000000000000000000000000000000", "traceId"},
		{"traceId", "4BF92F3577B34DA6A3CE929D0E0E4736", "traceId"},
		{"traceId", "4bf92f3577b34da6a3ce929d0e0e47", "traceId"},
		{"traceId", nil, "traceId"},
		{"spanId", "0000000000000000", "spanId"},
		{"spanId", "00f067aa0ba902bz", "spanId"},
		{"parentSpanId", "0000000000000000", "parentSpanId"},
		{"parentSpanId", "00f067aa0ba902b", "parentSpanId"},
		{"name", "", "name"},
		{"name", strings.Repeat("é", MaxSpanName+1), "name"},
		{"kind", "sideways", "kind"},
		{"kind", nil, "kind"},
		{"startMs", nil, "startMs"},
		{"startMs", "1764672000123", "startMs"},
		{"startMs", -1, "time"},
		{"endMs", 1764672000123.0, "before startMs"},
		{"endMs", 1e15, "time"},
		{"status", "fine", "status"},
		{"statusMessage", strings.Repeat("x", MaxStatusMessage+1), "statusMessage"},
		{"attributes", many, "attributes"},
		{"attributes", map[string]any{"a": nil}, `attribute "a"`},
		{"attributes", map[string]any{"a": []any{[]any{1}}}, `attribute "a"`},
		{"attributes", map[string]any{"a": []any{"x", 1}}, `attribute "a": a list's items`},
		{"attributes", map[string]any{"a": []any{nil}}, `attribute "a"`},
		{"attributes", map[string]any{"a": make([]any, MaxArrayItems+1)}, `attribute "a": list of 65 items`},
		{"attributes", map[string]any{"a": []any{strings.Repeat("x", MaxAttributeValue+1)}}, `attribute "a": list item`},
		{"attributes", map[string]any{"a": map[string]any{}}, `attribute "a"`},
		{"attributes", map[string]any{"a": strings.Repeat("x", MaxAttributeValue+1)}, `attribute "a"`},
		{"attributes", map[string]any{"": 1}, "attribute key"},
		{"attributes", "none", "attributes"},
		{"events", make([]any, MaxSpanEvents+1), "events"},
		{"events", []any{map[string]any{"name": "", "timeMs": 1764672000124.0}}, "event 0: name"},
		{"events", []any{map[string]any{"name": "x"}}, "event 0: timeMs"},
		{"events", []any{map[string]any{"name": "x", "timeMs": 1e15}}, "event 0: time"},
		{"events", []any{map[string]any{"name": "x", "timeMs": 1764672000124.0, "attributes": map[string]any{"a": map[string]any{}}}}, `event 0: attribute "a"`},
		{"events", []any{map[string]any{"name": "x", "timeMs": 1764672000124.0, "attributes": many}}, "event 0: 65 attributes"},
		{"events", "none", "events"},
		{"scope", map[string]any{"name": ""}, "scope"},
		{"scope", map[string]any{"name": "x", "version": strings.Repeat("v", MaxSpanName+1)}, "scope"},
		{"scope", "orders", "scope"},
		{"http", map[string]any{"method": "", "target": "/"}, "http: method"},
		{"http", map[string]any{"method": "G T", "target": "/"}, "http: method"},
		{"http", map[string]any{"method": strings.Repeat("M", 65), "target": "/"}, "http: method"},
		{"http", map[string]any{"method": "GET", "target": strings.Repeat("x", MaxSpanTarget+1)}, "http: target"},
		{"http", map[string]any{"method": "GET", "target": "/", "host": strings.Repeat("x", MaxSpanTarget+1)}, "http: target or host"},
		{"http", map[string]any{"method": "GET", "target": "/", "status": 1000}, "http: status"},
		{"http", "GET /", "http"},
		{"links", make([]any, MaxSpanLinks+1), "links"},
		{"links", []any{map[string]any{"traceId": "00000000000000000000000000000000", "spanId": "20f067aa0ba902b7"}}, "link 0"},
		{"links", []any{map[string]any{"traceId": "5bf92f3577b34da6a3ce929d0e0e4736"}}, "link 0"},
		{"links", []any{map[string]any{"traceId": "5bf92f3577b34da6a3ce929d0e0e4736", "spanId": "20f067aa0ba902b7", "attributes": map[string]any{"": 1}}}, "link 0: attribute key"},
	}
	for _, tt := range tests {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		if tt.value == nil {
			delete(m, tt.field)
		} else {
			m[tt.field] = tt.value
		}
		raw, _ := json.Marshal(m)
		_, err := DecodeSpan(raw)
		if !errors.Is(err, ErrInvalidSpan) || !strings.Contains(err.Error(), tt.why) {
			t.Errorf("%s=%.40v: error %v, want ErrInvalidSpan about %s", tt.field, tt.value, err, tt.why)
		}
	}
}

func TestDecodeSpans(t *testing.T) {
	spans, dropped, err := DecodeSpans(json.RawMessage(`[` + goodSpan + `, "x", {"traceId":1}, ` + goodSpan + `]`))
	if len(spans) != 2 || dropped != 2 || err == nil || !strings.Contains(err.Error(), "span 1") {
		t.Errorf("mixed: %d spans, %d dropped, %v", len(spans), dropped, err)
	}
	if spans, dropped, err := DecodeSpans(json.RawMessage(`{"spans":[]}`)); len(spans) != 0 || dropped != 1 || err == nil {
		t.Errorf("not an array: %d spans, %d dropped, %v", len(spans), dropped, err)
	}
	items := make([]string, MaxSpansPerMessage+3)
	for i := range items {
		items[i] = goodSpan
	}
	spans, dropped, err = DecodeSpans(json.RawMessage("[" + strings.Join(items, ",") + "]"))
	if len(spans) != MaxSpansPerMessage || dropped != 3 || err == nil {
		t.Errorf("over the limit: %d spans, %d dropped, %v", len(spans), dropped, err)
	}
}

// TestSpansMessageKeepsTheFrame: a spans message whose spans member is
// malformed is still a good frame, so the worker is not failed for it.
func TestSpansMessageKeepsTheFrame(t *testing.T) {
	var b strings.Builder
	if err := WriteMessage(&b, &Message{Type: TypeSpans, Spans: json.RawMessage(`{"no":"array"}`)}); err != nil {
		t.Fatal(err)
	}
	m, err := ReadMessage(strings.NewReader(b.String()))
	if err != nil || m.Type != TypeSpans || string(m.Spans) != `{"no":"array"}` {
		t.Fatalf("ReadMessage: %+v %v", m, err)
	}
}

// TestDecodeSpanHTTP: a server span with its request (version 5) may
// leave its name to wattd; http belongs to server spans only.
func TestDecodeSpanHTTP(t *testing.T) {
	const span = `{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","name":"","kind":"%s",
		"startMs":1764672000123.456,"endMs":1764672000125.789,
		"http":{"method":"GET","target":"/users?id=1","host":"api:8080","status":200,"tls":true}}`
	s, err := DecodeSpan([]byte(fmt.Sprintf(span, "server")))
	if err != nil {
		t.Fatal(err)
	}
	if s.HTTP == nil || *s.HTTP != (SpanHTTP{Method: "GET", Target: "/users?id=1", Host: "api:8080", Status: 200, TLS: true}) || s.Name != "" {
		t.Errorf("decoded %+v, http %+v", s, s.HTTP)
	}
	if _, err := DecodeSpan([]byte(fmt.Sprintf(span, "internal"))); !errors.Is(err, ErrInvalidSpan) || !strings.Contains(err.Error(), "http is for a server span") {
		t.Errorf("http on an internal span: %v", err)
	}
}
