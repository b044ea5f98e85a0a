package ipc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/wattd/wattd/supervisor/textclip"
)

// Limits of the spans message. A worker keeps within them; wattd drops
// (and counts) whatever is beyond them rather than trusting the worker.
const (
	MaxSpansPerMessage = 512  // spans in one message
	MaxSpanName        = 256  // characters of a span's name
	MaxSpanAttributes  = 64   // attributes of one span
	MaxAttributeKey    = 256  // characters of an attribute's key
	MaxAttributeValue  = 4096 // characters of a string attribute value
	MaxStatusMessage   = 4096 // characters of statusMessage
	MaxArrayItems      = 64   // items of a list attribute value
	MaxSpanEvents      = 64   // events of one span
	MaxSpanLinks       = 32   // links of one span
)

// Span kinds and statuses as they are written on the wire.
const (
	SpanKindServer   = "server"
	SpanKindClient   = "client"
	SpanKindInternal = "internal"
	SpanKindProducer = "producer"
	SpanKindConsumer = "consumer"

	SpanStatusUnset = "unset"
	SpanStatusOK    = "ok"
	SpanStatusError = "error"
)

// Span is one finished span, as a worker reports it in a spans message:
//
//	{"traceId":"<32 hex>", "spanId":"<16 hex>", "parentSpanId":"<16 hex>",
//	 "name":"GET /users", "kind":"server", "startMs":1764672000123.456,
//	 "endMs":1764672000125.789, "attributes":{"http.response.status_code":200},
//	 "status":"ok", "statusMessage":"..."}
//
// Ids are lower-case hex and never all zero; parentSpanId is absent for a
// root span. Times are Unix epoch milliseconds, fractional. Attribute values
// are strings, numbers or booleans; a number without a fraction or exponent
// that fits in 64 bits is an integer, any other a float. status is unset
// when absent. wattd adds everything about where the span comes from (the
// application, the worker, its pid, the service name), so spans carry none
// of it.
type Span struct {
	TraceID      string `json:"traceId"`
	SpanID       string `json:"spanId"`
	ParentSpanID string `json:"parentSpanId,omitempty"`
	// ParentRemote says the parent is another process's span (one taken
	// from a request's traceparent): OTLP's is_remote. Without it the
	// parent is a span of the same process.
	ParentRemote  bool           `json:"parentRemote,omitempty"`
	Name          string         `json:"name"`
	Kind          string         `json:"kind"`
	StartMs       float64        `json:"startMs"`
	EndMs         float64        `json:"endMs"`
	Attributes    map[string]any `json:"attributes,omitempty"`
	Status        string         `json:"status,omitempty"`
	StatusMessage string         `json:"statusMessage,omitempty"`
	Events        []SpanEvent    `json:"events,omitempty"`
	Links         []SpanLink     `json:"links,omitempty"`
	// Scope is the instrumentation scope (the tracer's name and version)
	// when it is not wattd's: an application's own spans.
	Scope *SpanScope `json:"scope,omitempty"`
	// HTTP is the request of a server span (version 5): wattd derives the
	// name, attributes and status it gives a binary server span from it,
	// and what the span carries itself takes their place.
	HTTP *SpanHTTP `json:"http,omitempty"`
}

// SpanHTTP is the request of a server span sent as JSON, the fields of a
// binary server span record:
//
//	{"method":"GET","target":"/users?id=1","host":"api.example.com:8080",
//	 "status":200,"tls":false,"incomplete":false}
//
// method is an HTTP token of 1 to 64 bytes; target (the request's URL
// path and query) and host (its Host header) at most MaxSpanTarget bytes;
// status is the response's, 0 for none; incomplete says the response
// closed before it was complete.
type SpanHTTP struct {
	Method     string `json:"method"`
	Target     string `json:"target"`
	Host       string `json:"host,omitempty"`
	Status     int    `json:"status,omitempty"`
	TLS        bool   `json:"tls,omitempty"`
	Incomplete bool   `json:"incomplete,omitempty"`
}

// SpanScope names what made a span: {"name":"orders","version":"1.0.0"}.
// name is 1 to MaxSpanName characters, version at most that.
type SpanScope struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// SpanEvent is something that happened during a span:
//
//	{"name":"exception","timeMs":1764672000124.5,"attributes":{"exception.message":"..."}}
//
// name follows the span name's rules, timeMs the span times', attributes
// the span attributes'.
type SpanEvent struct {
	Name       string         `json:"name"`
	TimeMs     float64        `json:"timeMs"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// SpanLink ties a span to another span, of this trace or another:
//
//	{"traceId":"<32 hex>","spanId":"<16 hex>","attributes":{...}}
type SpanLink struct {
	TraceID    string         `json:"traceId"`
	SpanID     string         `json:"spanId"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// ErrInvalidSpan is wrapped by every error DecodeSpan returns.
var ErrInvalidSpan = errors.New("ipc: invalid span")

// maxEpochMs bounds span times (year 5138): far beyond any real clock, and
// small enough that a time.Time conversion cannot overflow.
const maxEpochMs = 1e14

// DecodeSpans decodes the spans member of a spans message. It returns the
// valid spans, how many were dropped (invalid, or beyond
// MaxSpansPerMessage) and the first reason, for the caller's one warning.
// A member that is not an array counts as one dropped span.
func DecodeSpans(raw json.RawMessage) (spans []Span, dropped int, firstErr error) {
	// One pass over a batch whose every span has the right shape, which is
	// what a well-behaved worker sends; the span-by-span pass below, which
	// can say which span is wrong, only when that fails.
	var ws []wireSpan
	if err := json.Unmarshal(raw, &ws); err == nil {
		if len(ws) > MaxSpansPerMessage {
			dropped = len(ws) - MaxSpansPerMessage
			firstErr = fmt.Errorf("%w: %d spans in one message, limit %d", ErrInvalidSpan, len(ws), MaxSpansPerMessage)
			ws = ws[:MaxSpansPerMessage]
		}
		spans = make([]Span, 0, len(ws))
		for i := range ws {
			s, err := ws[i].span()
			if err != nil {
				dropped++
				if firstErr == nil {
					firstErr = fmt.Errorf("span %d: %w", i, err)
				}
				continue
			}
			spans = append(spans, s)
		}
		return spans, dropped, firstErr
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, 1, fmt.Errorf("%w: spans is not an array of objects: %w", ErrInvalidSpan, err)
	}
	if len(items) > MaxSpansPerMessage {
		dropped = len(items) - MaxSpansPerMessage
		firstErr = fmt.Errorf("%w: %d spans in one message, limit %d", ErrInvalidSpan, len(items), MaxSpansPerMessage)
		items = items[:MaxSpansPerMessage]
	}
	spans = make([]Span, 0, len(items))
	for i, it := range items {
		s, err := DecodeSpan(it)
		if err != nil {
			dropped++
			if firstErr == nil {
				firstErr = fmt.Errorf("span %d: %w", i, err)
			}
			continue
		}
		spans = append(spans, s)
	}
	return spans, dropped, firstErr
}

// wireSpan is Span with the attributes still raw, so that numbers keep
// their written form (an integer stays an integer).
type wireSpan struct {
	TraceID       string                     `json:"traceId"`
	SpanID        string                     `json:"spanId"`
	ParentSpanID  string                     `json:"parentSpanId"`
	ParentRemote  bool                       `json:"parentRemote"`
	Name          string                     `json:"name"`
	Kind          string                     `json:"kind"`
	StartMs       *float64                   `json:"startMs"`
	EndMs         *float64                   `json:"endMs"`
	Attributes    map[string]json.RawMessage `json:"attributes"`
	Status        string                     `json:"status"`
	StatusMessage string                     `json:"statusMessage"`
	Events        []wireEvent                `json:"events"`
	Links         []wireLink                 `json:"links"`
	Scope         *SpanScope                 `json:"scope"`
	HTTP          *SpanHTTP                  `json:"http"`
}

type wireEvent struct {
	Name       string                     `json:"name"`
	TimeMs     *float64                   `json:"timeMs"`
	Attributes map[string]json.RawMessage `json:"attributes"`
}

type wireLink struct {
	TraceID    string                     `json:"traceId"`
	SpanID     string                     `json:"spanId"`
	Attributes map[string]json.RawMessage `json:"attributes"`
}

// DecodeSpan decodes and validates one span; every error wraps
// ErrInvalidSpan and says which field is wrong.
func DecodeSpan(raw json.RawMessage) (Span, error) {
	var w wireSpan
	if err := json.Unmarshal(raw, &w); err != nil {
		return Span{}, fmt.Errorf("%w: %w", ErrInvalidSpan, err)
	}
	return w.span()
}

// span validates a decoded wire span and converts its attributes.
func (w *wireSpan) span() (Span, error) {
	if w.StartMs == nil || w.EndMs == nil {
		return Span{}, fmt.Errorf("%w: startMs and endMs are required", ErrInvalidSpan)
	}
	s := Span{
		TraceID: w.TraceID, SpanID: w.SpanID, ParentSpanID: w.ParentSpanID, ParentRemote: w.ParentRemote && w.ParentSpanID != "",
		Name: w.Name, Kind: w.Kind, StartMs: *w.StartMs, EndMs: *w.EndMs,
		Status: w.Status, StatusMessage: w.StatusMessage, Scope: w.Scope, HTTP: w.HTTP,
	}
	if s.Status == "" {
		s.Status = SpanStatusUnset
	}
	var err error
	if s.Attributes, err = decodeAttributes("", w.Attributes); err != nil {
		return Span{}, err
	}
	if len(w.Events) > MaxSpanEvents {
		return Span{}, fmt.Errorf("%w: %d events, limit %d", ErrInvalidSpan, len(w.Events), MaxSpanEvents)
	}
	if len(w.Links) > MaxSpanLinks {
		return Span{}, fmt.Errorf("%w: %d links, limit %d", ErrInvalidSpan, len(w.Links), MaxSpanLinks)
	}
	for i, e := range w.Events {
		if e.TimeMs == nil {
			return Span{}, fmt.Errorf("%w: event %d: timeMs is required", ErrInvalidSpan, i)
		}
		ev := SpanEvent{Name: e.Name, TimeMs: *e.TimeMs}
		if ev.Attributes, err = decodeAttributes(fmt.Sprintf("event %d: ", i), e.Attributes); err != nil {
			return Span{}, err
		}
		s.Events = append(s.Events, ev)
	}
	for i, l := range w.Links {
		ln := SpanLink{TraceID: l.TraceID, SpanID: l.SpanID}
		if ln.Attributes, err = decodeAttributes(fmt.Sprintf("link %d: ", i), l.Attributes); err != nil {
			return Span{}, err
		}
		s.Links = append(s.Links, ln)
	}
	if err := s.Validate(); err != nil {
		return Span{}, err
	}
	return s, nil
}

// decodeAttributes converts raw attributes; where prefixes its errors
// (the event or link they belong to). nil for none.
func decodeAttributes(where string, raw map[string]json.RawMessage) (map[string]any, error) {
	if len(raw) > MaxSpanAttributes {
		return nil, fmt.Errorf("%w: %s%d attributes, limit %d", ErrInvalidSpan, where, len(raw), MaxSpanAttributes)
	}
	if len(raw) == 0 {
		return nil, nil
	}
	out := make(map[string]any, len(raw))
	for k, v := range raw {
		val, err := attributeValue(v)
		if err != nil {
			return nil, fmt.Errorf("%w: %sattribute %q: %w", ErrInvalidSpan, where, k, err)
		}
		out[k] = val
	}
	return out, nil
}

// attributeValue turns a raw JSON attribute value into a string, bool,
// int64 or float64.
func attributeValue(v json.RawMessage) (any, error) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return nil, errors.New("empty value")
	}
	switch v[0] {
	case '"':
		// A plain string (no escape, ASCII only) is its own text; the
		// raw value was already checked as JSON by the decoder.
		if len(v) >= 2 && v[len(v)-1] == '"' && plainASCII(v[1:len(v)-1]) {
			return string(v[1 : len(v)-1]), nil
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, err
		}
		return s, nil
	case 't', 'f':
		var b bool
		if err := json.Unmarshal(v, &b); err != nil {
			return nil, err
		}
		return b, nil
	case '[':
		return arrayValue(v)
	case 'n', '{':
		return nil, errors.New("value is not a string, number, boolean or list of one of them")
	}
	if !bytes.ContainsAny(v, ".eE") {
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return n, nil
		}
	}
	var f float64
	if err := json.Unmarshal(v, &f); err != nil {
		return nil, err
	}
	return f, nil
}

// arrayValue turns a raw JSON list into []string, []bool, []int64 or
// []float64: its items must be of one of those kinds (integers and other
// numbers mix into []float64).
func arrayValue(v json.RawMessage) (any, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(v, &items); err != nil {
		return nil, err
	}
	if len(items) > MaxArrayItems {
		return nil, fmt.Errorf("list of %d items, limit %d", len(items), MaxArrayItems)
	}
	vals := make([]any, len(items))
	for i, it := range items {
		it = bytes.TrimSpace(it)
		if len(it) == 0 || it[0] == '[' {
			return nil, errors.New("a list holds strings, numbers or booleans")
		}
		x, err := attributeValue(it)
		if err != nil {
			return nil, err
		}
		vals[i] = x
	}
	return typedList(vals)
}

// allOf is vals as a []T, or err when one is not a T.
func allOf[T any](vals []any, err error) ([]T, error) {
	out := make([]T, len(vals))
	for i, x := range vals {
		v, ok := x.(T)
		if !ok {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// typedList makes the typed list of vals, which must be all strings, all
// booleans or all numbers; an empty list is []string.
func typedList(vals []any) (any, error) {
	mixed := errors.New("a list's items must all be strings, all numbers or all booleans")
	if len(vals) == 0 {
		return []string{}, nil
	}
	switch vals[0].(type) {
	case string:
		return allOf[string](vals, mixed)
	case bool:
		return allOf[bool](vals, mixed)
	}
	ints := make([]int64, len(vals))
	floats := make([]float64, len(vals))
	allInts := true
	for i, x := range vals {
		switch n := x.(type) {
		case int64:
			ints[i], floats[i] = n, float64(n)
		case float64:
			floats[i], allInts = n, false
		default:
			return nil, mixed
		}
	}
	if allInts {
		return ints, nil
	}
	return floats, nil
}

// plainASCII reports whether b holds printable ASCII without escapes or
// quotes.
func plainASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c >= 0x7f || c == '\\' || c == '"' {
			return false
		}
	}
	return true
}

// Validate checks a span against the rules of the spans message (see
// Span and the Max constants). Errors wrap ErrInvalidSpan.
func (s *Span) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidSpan, fmt.Sprintf(format, args...))
	}
	if !validID(s.TraceID, 32) {
		return bad("traceId %q is not 32 lower-case hex digits, not all zero", clip(s.TraceID))
	}
	if !validID(s.SpanID, 16) {
		return bad("spanId %q is not 16 lower-case hex digits, not all zero", clip(s.SpanID))
	}
	if s.ParentSpanID != "" && !validID(s.ParentSpanID, 16) {
		return bad("parentSpanId %q is not 16 lower-case hex digits, not all zero", clip(s.ParentSpanID))
	}
	// A span with http may leave its name to wattd.
	if (s.Name == "" && s.HTTP == nil) || !utf8.ValidString(s.Name) || utf8.RuneCountInString(s.Name) > MaxSpanName {
		return bad("name must be 1 to %d characters of valid UTF-8", MaxSpanName)
	}
	if h := s.HTTP; h != nil {
		if s.Kind != SpanKindServer {
			return bad("http is for a server span, not %q", clip(s.Kind))
		}
		if h.Method == "" || len(h.Method) > maxSpanMethod || strings.IndexFunc(h.Method, func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0 {
			return bad("http: method %q is not an HTTP token of 1 to %d bytes", clip(h.Method), maxSpanMethod)
		}
		if len(h.Target) > MaxSpanTarget || len(h.Host) > MaxSpanTarget || !utf8.ValidString(h.Target) || !utf8.ValidString(h.Host) {
			return bad("http: target or host over %d bytes or not UTF-8", MaxSpanTarget)
		}
		if h.Status < 0 || h.Status > maxHTTPStatus {
			return bad("http: status %d is not 0 to %d", h.Status, maxHTTPStatus)
		}
	}
	switch s.Kind {
	case SpanKindServer, SpanKindClient, SpanKindInternal, SpanKindProducer, SpanKindConsumer:
	default:
		return bad("kind %q is not server, client or internal", clip(s.Kind))
	}
	for _, t := range []float64{s.StartMs, s.EndMs} {
		if math.IsNaN(t) || t <= 0 || t > maxEpochMs {
			return bad("time %v ms is not a Unix epoch time", t)
		}
	}
	if s.EndMs < s.StartMs {
		return bad("endMs %v is before startMs %v", s.EndMs, s.StartMs)
	}
	switch s.Status {
	case "", SpanStatusUnset, SpanStatusOK, SpanStatusError:
	default:
		return bad("status %q is not unset, ok or error", clip(s.Status))
	}
	if utf8.RuneCountInString(s.StatusMessage) > MaxStatusMessage || !utf8.ValidString(s.StatusMessage) {
		return bad("statusMessage is over %d characters or not UTF-8", MaxStatusMessage)
	}
	if err := validAttributes("", s.Attributes); err != nil {
		return err
	}
	if sc := s.Scope; sc != nil {
		if sc.Name == "" || !utf8.ValidString(sc.Name) || utf8.RuneCountInString(sc.Name) > MaxSpanName ||
			!utf8.ValidString(sc.Version) || utf8.RuneCountInString(sc.Version) > MaxSpanName {
			return bad("scope: name must be 1 to %d characters of valid UTF-8, version at most %d", MaxSpanName, MaxSpanName)
		}
	}
	if len(s.Events) > MaxSpanEvents {
		return bad("%d events, limit %d", len(s.Events), MaxSpanEvents)
	}
	for i, e := range s.Events {
		if e.Name == "" || !utf8.ValidString(e.Name) || utf8.RuneCountInString(e.Name) > MaxSpanName {
			return bad("event %d: name must be 1 to %d characters of valid UTF-8", i, MaxSpanName)
		}
		if math.IsNaN(e.TimeMs) || e.TimeMs <= 0 || e.TimeMs > maxEpochMs {
			return bad("event %d: time %v ms is not a Unix epoch time", i, e.TimeMs)
		}
		if err := validAttributes(fmt.Sprintf("event %d: ", i), e.Attributes); err != nil {
			return err
		}
	}
	if len(s.Links) > MaxSpanLinks {
		return bad("%d links, limit %d", len(s.Links), MaxSpanLinks)
	}
	for i, l := range s.Links {
		if !validID(l.TraceID, 32) || !validID(l.SpanID, 16) {
			return bad("link %d: traceId %q or spanId %q is not lower-case hex of the right length, not all zero", i, clip(l.TraceID), clip(l.SpanID))
		}
		if err := validAttributes(fmt.Sprintf("link %d: ", i), l.Attributes); err != nil {
			return err
		}
	}
	return nil
}

// validAttributes checks attributes of a span, event or link; where
// prefixes its errors.
func validAttributes(where string, attrs map[string]any) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s%s", ErrInvalidSpan, where, fmt.Sprintf(format, args...))
	}
	if len(attrs) > MaxSpanAttributes {
		return bad("%d attributes, limit %d", len(attrs), MaxSpanAttributes)
	}
	for k, v := range attrs {
		if k == "" || utf8.RuneCountInString(k) > MaxAttributeKey || !utf8.ValidString(k) {
			return bad("attribute key %q is empty, over %d characters or not UTF-8", clip(k), MaxAttributeKey)
		}
		switch v := v.(type) {
		case string:
			if utf8.RuneCountInString(v) > MaxAttributeValue || !utf8.ValidString(v) {
				return bad("attribute %q: value over %d characters or not UTF-8", k, MaxAttributeValue)
			}
		case float64:
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return bad("attribute %q: value is not a finite number", k)
			}
		case bool, int64, int:
		case []string:
			if len(v) > MaxArrayItems {
				return bad("attribute %q: list of %d items, limit %d", k, len(v), MaxArrayItems)
			}
			for _, x := range v {
				if utf8.RuneCountInString(x) > MaxAttributeValue || !utf8.ValidString(x) {
					return bad("attribute %q: list item over %d characters or not UTF-8", k, MaxAttributeValue)
				}
			}
		case []float64:
			if len(v) > MaxArrayItems {
				return bad("attribute %q: list of %d items, limit %d", k, len(v), MaxArrayItems)
			}
			for _, x := range v {
				if math.IsNaN(x) || math.IsInf(x, 0) {
					return bad("attribute %q: list item is not a finite number", k)
				}
			}
		case []int64, []bool:
			if n := listLen(v); n > MaxArrayItems {
				return bad("attribute %q: list of %d items, limit %d", k, n, MaxArrayItems)
			}
		default:
			return bad("attribute %q: value of type %T is not a string, number, boolean or list of one of them", k, v)
		}
	}
	return nil
}

func listLen(v any) int {
	switch v := v.(type) {
	case []int64:
		return len(v)
	case []bool:
		return len(v)
	}
	return 0
}

// validID tells whether id is n lower-case hex digits, not all zero.
func validID(id string, n int) bool {
	if len(id) != n {
		return false
	}
	zero := true
	for i := 0; i < n; i++ {
		c := id[i]
		switch {
		case c == '0':
		case c >= '1' && c <= '9', c >= 'a' && c <= 'f':
			zero = false
		default:
			return false
		}
	}
	return !zero
}

// clip shortens a bad value for an error message: the message goes to a
// log, and a lying worker's value can be long.
func clip(s string) string { return textclip.Clip(s, 40) }
