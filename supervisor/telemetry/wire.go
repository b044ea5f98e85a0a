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
	b = protowire.AppendTag(b, fieldSpanTraceID, protowire.BytesType)
	b = protowire.AppendBytes(b, h.TraceID[:])
	b = protowire.AppendTag(b, fieldSpanSpanID, protowire.BytesType)
	b = protowire.AppendBytes(b, h.SpanID[:])
	if h.HasParent() {
		b = protowire.AppendTag(b, fieldSpanParentSpanID, protowire.BytesType)
		b = protowire.AppendBytes(b, h.ParentSpanID[:])
	}
	b = protowire.AppendTag(b, fieldSpanName, protowire.BytesType)
	b = protowire.AppendString(b, name)
	b = protowire.AppendTag(b, fieldSpanKind, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(kind))
	b = protowire.AppendTag(b, fieldSpanStart, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, msNanos(h.StartMs))
	b = protowire.AppendTag(b, fieldSpanEnd, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, msNanos(h.EndMs))
	b = protowire.AppendTag(b, fieldSpanFlags, protowire.Fixed32Type)
	b = protowire.AppendFixed32(b, flags)
	w.body = b
}

// appendKVHead appends a KeyValue whose AnyValue holds one field of the given
// size, and returns the buffer positioned for that field.
func appendKVHead(b []byte, key string, valueSize int) []byte {
	kvSize := 1 + protowire.SizeBytes(len(key)) + 1 + protowire.SizeBytes(valueSize)
	b = protowire.AppendTag(b, fieldSpanAttributes, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(kvSize))
	b = protowire.AppendTag(b, fieldKeyValueKey, protowire.BytesType)
	b = protowire.AppendString(b, key)
	b = protowire.AppendTag(b, fieldKeyValueValue, protowire.BytesType)
	return protowire.AppendVarint(b, uint64(valueSize))
}

func (w *wireWriter) str(key, v string) {
	b := appendKVHead(w.body, key, 1+protowire.SizeBytes(len(v)))
	b = protowire.AppendTag(b, fieldAnyString, protowire.BytesType)
	w.body = protowire.AppendString(b, v)
}

func (w *wireWriter) int(key string, v int64) {
	b := appendKVHead(w.body, key, 1+protowire.SizeVarint(uint64(v)))
	b = protowire.AppendTag(b, fieldAnyInt, protowire.VarintType)
	w.body = protowire.AppendVarint(b, uint64(v))
}

func (w *wireWriter) status(code tracepb.Status_StatusCode, msg string) {
	size := 1 + protowire.SizeVarint(uint64(code))
	if msg != "" {
		size += 1 + protowire.SizeBytes(len(msg))
	}
	b := protowire.AppendTag(w.body, fieldSpanStatus, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	if msg != "" {
		b = protowire.AppendTag(b, fieldStatusMessage, protowire.BytesType)
		b = protowire.AppendString(b, msg)
	}
	b = protowire.AppendTag(b, fieldStatusCode, protowire.VarintType)
	w.body = protowire.AppendVarint(b, uint64(code))
}

func (w *wireWriter) end() {
	w.out = protowire.AppendTag(w.out, fieldScopeSpansSpans, protowire.BytesType)
	w.out = protowire.AppendBytes(w.out, w.body)
}
