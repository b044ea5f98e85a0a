package telemetry

import (
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// ReadOnly makes the SDK's form of an OTLP span, with the given resource,
// for the exporters that take that form (console, file). The OTLP
// exporters upload the OTLP form as it is.
func ReadOnly(sp *tracepb.Span, res *resource.Resource) sdktrace.ReadOnlySpan {
	return ReadOnlyIn(sp, res, Scope)
}

// ReadOnlyIn is ReadOnly for a span of the given instrumentation scope.
func ReadOnlyIn(sp *tracepb.Span, res *resource.Resource, scope instrumentation.Scope) sdktrace.ReadOnlySpan {
	var tid trace.TraceID
	var sid trace.SpanID
	copy(tid[:], sp.TraceId)
	copy(sid[:], sp.SpanId)
	stub := tracetest.SpanStub{
		Name: sp.Name,
		SpanContext: trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled,
		}),
		SpanKind:             sdkKind(sp.Kind),
		StartTime:            time.Unix(0, int64(sp.StartTimeUnixNano)),
		EndTime:              time.Unix(0, int64(sp.EndTimeUnixNano)),
		Attributes:           sdkAttributes(sp.Attributes),
		Resource:             res,
		InstrumentationScope: scope,
	}
	if len(sp.ParentSpanId) == 8 {
		var pid trace.SpanID
		copy(pid[:], sp.ParentSpanId)
		stub.Parent = trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: tid, SpanID: pid, TraceFlags: trace.FlagsSampled,
			Remote: sp.Flags&flagsIsRemote != 0,
		})
	}
	for _, e := range sp.Events {
		stub.Events = append(stub.Events, sdktrace.Event{
			Name: e.Name, Time: time.Unix(0, int64(e.TimeUnixNano)), Attributes: sdkAttributes(e.Attributes),
		})
	}
	for _, l := range sp.Links {
		var ltid trace.TraceID
		var lsid trace.SpanID
		copy(ltid[:], l.TraceId)
		copy(lsid[:], l.SpanId)
		stub.Links = append(stub.Links, sdktrace.Link{
			SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: ltid, SpanID: lsid}),
			Attributes:  sdkAttributes(l.Attributes),
		})
	}
	if st := sp.Status; st != nil {
		switch st.Code {
		case tracepb.Status_STATUS_CODE_OK:
			stub.Status = sdktrace.Status{Code: codes.Ok}
		case tracepb.Status_STATUS_CODE_ERROR:
			stub.Status = sdktrace.Status{Code: codes.Error, Description: st.Message}
		}
	}
	return stub.Snapshot()
}

func sdkKind(k tracepb.Span_SpanKind) trace.SpanKind {
	switch k {
	case tracepb.Span_SPAN_KIND_SERVER:
		return trace.SpanKindServer
	case tracepb.Span_SPAN_KIND_CLIENT:
		return trace.SpanKindClient
	case tracepb.Span_SPAN_KIND_PRODUCER:
		return trace.SpanKindProducer
	case tracepb.Span_SPAN_KIND_CONSUMER:
		return trace.SpanKindConsumer
	}
	return trace.SpanKindInternal
}

func sdkAttributes(kvs []*commonpb.KeyValue) []attribute.KeyValue {
	if len(kvs) == 0 {
		return nil
	}
	out := make([]attribute.KeyValue, 0, len(kvs))
	for _, kv := range kvs {
		switch v := kv.Value.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			out = append(out, attribute.String(kv.Key, v.StringValue))
		case *commonpb.AnyValue_IntValue:
			out = append(out, attribute.Int64(kv.Key, v.IntValue))
		case *commonpb.AnyValue_DoubleValue:
			out = append(out, attribute.Float64(kv.Key, v.DoubleValue))
		case *commonpb.AnyValue_BoolValue:
			out = append(out, attribute.Bool(kv.Key, v.BoolValue))
		case *commonpb.AnyValue_ArrayValue:
			if a, ok := sdkList(kv.Key, v.ArrayValue.GetValues()); ok {
				out = append(out, a)
			}
		}
	}
	return out
}

// sdkList is a list attribute (of one kind, as wattd takes them) in the
// SDK's form; ok is false for a list of anything else.
func sdkList(key string, vals []*commonpb.AnyValue) (attribute.KeyValue, bool) {
	if len(vals) == 0 {
		return attribute.StringSlice(key, []string{}), true
	}
	switch vals[0].GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return attribute.StringSlice(key, itemsOf(vals, (*commonpb.AnyValue).GetStringValue)), true
	case *commonpb.AnyValue_BoolValue:
		return attribute.BoolSlice(key, itemsOf(vals, (*commonpb.AnyValue).GetBoolValue)), true
	case *commonpb.AnyValue_IntValue:
		return attribute.Int64Slice(key, itemsOf(vals, (*commonpb.AnyValue).GetIntValue)), true
	case *commonpb.AnyValue_DoubleValue:
		return attribute.Float64Slice(key, itemsOf(vals, (*commonpb.AnyValue).GetDoubleValue)), true
	}
	return attribute.KeyValue{}, false
}

func itemsOf[T any](vals []*commonpb.AnyValue, get func(*commonpb.AnyValue) T) []T {
	out := make([]T, len(vals))
	for i, v := range vals {
		out[i] = get(v)
	}
	return out
}
