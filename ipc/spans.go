package ipc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
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
	TraceID       string         `json:"traceId"`
	SpanID        string         `json:"spanId"`
	ParentSpanID  string         `json:"parentSpanId,omitempty"`
	Name          string         `json:"name"`
	Kind          string         `json:"kind"`
	StartMs       float64        `json:"startMs"`
	EndMs         float64        `json:"endMs"`
	Attributes    map[string]any `json:"attributes,omitempty"`
	Status        string         `json:"status,omitempty"`
	StatusMessage string         `json:"statusMessage,omitempty"`
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
	Name          string                     `json:"name"`
	Kind          string                     `json:"kind"`
	StartMs       *float64                   `json:"startMs"`
	EndMs         *float64                   `json:"endMs"`
	Attributes    map[string]json.RawMessage `json:"attributes"`
	Status        string                     `json:"status"`
	StatusMessage string                     `json:"statusMessage"`
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
		TraceID: w.TraceID, SpanID: w.SpanID, ParentSpanID: w.ParentSpanID,
		Name: w.Name, Kind: w.Kind, StartMs: *w.StartMs, EndMs: *w.EndMs,
		Status: w.Status, StatusMessage: w.StatusMessage,
	}
	if s.Status == "" {
		s.Status = SpanStatusUnset
	}
	if len(w.Attributes) > MaxSpanAttributes {
		return Span{}, fmt.Errorf("%w: %d attributes, limit %d", ErrInvalidSpan, len(w.Attributes), MaxSpanAttributes)
	}
	if len(w.Attributes) > 0 {
		s.Attributes = make(map[string]any, len(w.Attributes))
		for k, v := range w.Attributes {
			val, err := attributeValue(v)
			if err != nil {
				return Span{}, fmt.Errorf("%w: attribute %q: %w", ErrInvalidSpan, k, err)
			}
			s.Attributes[k] = val
		}
	}
	if err := s.Validate(); err != nil {
		return Span{}, err
	}
	return s, nil
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
	case 'n', '[', '{':
		return nil, errors.New("value is not a string, number or boolean")
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
	if s.Name == "" || !utf8.ValidString(s.Name) || utf8.RuneCountInString(s.Name) > MaxSpanName {
		return bad("name must be 1 to %d characters of valid UTF-8", MaxSpanName)
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
	if len(s.Attributes) > MaxSpanAttributes {
		return bad("%d attributes, limit %d", len(s.Attributes), MaxSpanAttributes)
	}
	for k, v := range s.Attributes {
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
		default:
			return bad("attribute %q: value of type %T is not a string, number or boolean", k, v)
		}
	}
	return nil
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
func clip(s string) string {
	const n = 40
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
