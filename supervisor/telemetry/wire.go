package telemetry

import (
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/wattd/wattd/ipc"
)

// The OTLP exporters upload []*tracepb.ResourceSpans, which they marshal
// once per export. For the spans of Node workers, one per request, wattd
// skips the objects: each span is encoded straight into protobuf bytes
// (the trace.proto field numbers below), and the bytes become the
// ScopeSpans' unknown fields, which protobuf's marshaling writes out as
// they are. On the wire that is exactly the message the objects would
// have given: repeated "spans" fields, one per span.
const (
	fieldScopeSpansSpans = 2

	fieldSpanTraceID      = 1
	fieldSpanSpanID       = 2
	fieldSpanParentSpanID = 4
	fieldSpanName         = 5
	fieldSpanKind         = 6
	fieldSpanStart        = 7
	fieldSpanEnd          = 8
	fieldSpanAttributes   = 9
	fieldSpanStatus       = 15
	fieldSpanFlags        = 16

	fieldStatusMessage = 2
	fieldStatusCode    = 3

	fieldKeyValueKey   = 1
	fieldKeyValueValue = 2

	fieldAnyString = 1
	fieldAnyInt    = 3
)

// wireWriter appends each span it is given to out as one ScopeSpans
// "spans" field.
type wireWriter struct {
	out  []byte
	body []byte // the span being written
}

func (w *wireWriter) begin(h *ipc.HTTPSpan, kind tracepb.Span_SpanKind, name string, flags uint32) {
	b := w.body[:0]
	b = appendTag(b, fieldSpanTraceID, protowire.BytesType)
	b = appendBytes(b, h.TraceID[:])
	b = appendTag(b, fieldSpanSpanID, protowire.BytesType)
	b = appendBytes(b, h.SpanID[:])
	if h.HasParent() {
		b = appendTag(b, fieldSpanParentSpanID, protowire.BytesType)
		b = appendBytes(b, h.ParentSpanID[:])
	}
	b = appendTag(b, fieldSpanName, protowire.BytesType)
	b = appendString(b, name)
	b = appendTag(b, fieldSpanKind, protowire.VarintType)
	b = appendVarint(b, uint64(kind))
	b = appendTag(b, fieldSpanStart, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, msNanos(h.StartMs))
	b = appendTag(b, fieldSpanEnd, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, msNanos(h.EndMs))
	b = appendTag(b, fieldSpanFlags, protowire.Fixed32Type)
	b = protowire.AppendFixed32(b, flags)
	w.body = b
}

// appendKVHead appends a KeyValue whose AnyValue holds one field of the given
// size, and returns the buffer positioned for that field.
func appendKVHead(b []byte, key string, valueSize int) []byte {
	kvSize := 1 + protowire.SizeBytes(len(key)) + 1 + protowire.SizeBytes(valueSize)
	b = appendTag(b, fieldSpanAttributes, protowire.BytesType)
	b = appendVarint(b, uint64(kvSize))
	b = appendTag(b, fieldKeyValueKey, protowire.BytesType)
	b = appendString(b, key)
	b = appendTag(b, fieldKeyValueValue, protowire.BytesType)
	return appendVarint(b, uint64(valueSize))
}

func (w *wireWriter) str(key, v string) {
	b := appendKVHead(w.body, key, 1+protowire.SizeBytes(len(v)))
	b = appendTag(b, fieldAnyString, protowire.BytesType)
	w.body = appendString(b, v)
}

func (w *wireWriter) int(key string, v int64) {
	b := appendKVHead(w.body, key, 1+protowire.SizeVarint(uint64(v)))
	b = appendTag(b, fieldAnyInt, protowire.VarintType)
	w.body = appendVarint(b, uint64(v))
}

func (w *wireWriter) status(code tracepb.Status_StatusCode, msg string) {
	size := 1 + protowire.SizeVarint(uint64(code))
	if msg != "" {
		size += 1 + protowire.SizeBytes(len(msg))
	}
	b := appendTag(w.body, fieldSpanStatus, protowire.BytesType)
	b = appendVarint(b, uint64(size))
	if msg != "" {
		b = appendTag(b, fieldStatusMessage, protowire.BytesType)
		b = appendString(b, msg)
	}
	b = appendTag(b, fieldStatusCode, protowire.VarintType)
	w.body = appendVarint(b, uint64(code))
}

func (w *wireWriter) end() {
	w.out = appendTag(w.out, fieldScopeSpansSpans, protowire.BytesType)
	w.out = appendBytes(w.out, w.body)
}

// The protowire appenders, with the one-byte varint of every tag and of
// nearly every length inlined: a span takes some forty of them, and the
// call each cost was an eighth of wattd's work per span.

func appendVarint(b []byte, v uint64) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return protowire.AppendVarint(b, v)
}

func appendTag(b []byte, num protowire.Number, typ protowire.Type) []byte {
	return appendVarint(b, uint64(num)<<3|uint64(typ&7))
}

func appendBytes(b, v []byte) []byte { return append(appendVarint(b, uint64(len(v))), v...) }

func appendString(b []byte, v string) []byte {
	return append(appendVarint(b, uint64(len(v))), v...)
}
