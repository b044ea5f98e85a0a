package telemetry

import (
	"encoding/json"
	"math"
	"sort"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/wattd/wattd/ipc"
)

// Resource attribute keys wattd sets on every span besides service.name
// and service.version.
const (
	AttrApplicationID = "wattd.application.id"
	AttrWorkerID      = "wattd.worker.id"
	AttrProcessPID    = "process.pid"
)

// Scope is the instrumentation scope of the spans workers report: they
// come from wattd's worker runtimes, not from a library the app chose.
var Scope = instrumentation.Scope{Name: "github.com/wattd/wattd"}

// Source is one worker process as a source of spans: it knows the
// resource its spans get. Ingest is called by the one goroutine that
// reads the worker's control channel.
type Source struct {
	p      *Pipeline
	app    string
	worker int
	log    *zap.Logger
	res    *resource.Resource
	counts *AppCounts

	warn limiter // invalid spans: one warning per errorLogEvery
}

// Source returns the span source of application app's worker (slot index
// worker, process pid); nil for a nil Pipeline, and Ingest on a nil
// Source drops the spans.
func (p *Pipeline) Source(app string, worker, pid int) *Source {
	if p == nil {
		return nil
	}
	return &Source{
		p:      p,
		app:    app,
		worker: worker,
		log:    p.log.With(zap.String("app", app), zap.Int("worker", worker), zap.Int("pid", pid)),
		res:    p.resource(app, worker, pid),
		counts: p.appCounts(app),
	}
}

var (
	envResourceOnce sync.Once
	envResource     *resource.Resource
)

// resource is the resource of a worker's spans: OTEL_RESOURCE_ATTRIBUTES
// (read once, as the SDK reads it), overridden by what wattd knows.
func (p *Pipeline) resource(app string, worker, pid int) *resource.Resource {
	attrs := []attribute.KeyValue{
		attribute.String("service.name", p.cfg.ServiceName(app)),
		attribute.String(AttrApplicationID, app),
		attribute.Int(AttrWorkerID, worker),
		attribute.Int(AttrProcessPID, pid),
	}
	if p.cfg.Version != "" {
		attrs = append(attrs, attribute.String("service.version", p.cfg.Version))
	}
	own := resource.NewSchemaless(attrs...)
	envResourceOnce.Do(func() {
		// resource.Environment also reads OTEL_SERVICE_NAME, which would
		// name every application alike; wattd's service.name wins anyway.
		envResource = resource.Environment()
	})
	if merged, err := resource.Merge(envResource, own); err == nil {
		return merged
	}
	return own
}

// Ingest takes the spans member of a spans message: valid spans go to
// every exporter's queue, invalid ones and those that find a queue full
// are dropped and counted. It never blocks.
func (s *Source) Ingest(raw json.RawMessage) {
	if s == nil {
		return
	}
	spans, dropped, firstErr := ipc.DecodeSpans(raw)
	s.counts.Received.Add(uint64(len(spans) + dropped))
	if dropped > 0 {
		s.counts.Invalid.Add(uint64(dropped))
		if n, ok := s.warn.allow(time.Now()); ok {
			s.log.Warn("worker sent invalid spans; they are dropped", zap.Int("dropped", dropped), zap.Error(firstErr), zap.Uint64("messagesSinceLastWarning", n))
		}
	}
	if len(spans) == 0 {
		return
	}
	ro := make([]sdktrace.ReadOnlySpan, len(spans))
	for i := range spans {
		ro[i] = Convert(&spans[i], s.res)
	}
	if full := s.p.enqueue(ro); full > 0 {
		s.counts.QueueFull.Add(uint64(full))
	}
}

// Convert makes an SDK span of a validated ipc.Span, keeping the worker's
// ids and times, with the given resource.
func Convert(sp *ipc.Span, res *resource.Resource) sdktrace.ReadOnlySpan {
	tid, _ := trace.TraceIDFromHex(sp.TraceID)
	sid, _ := trace.SpanIDFromHex(sp.SpanID)
	stub := tracetest.SpanStub{
		Name: sp.Name,
		SpanContext: trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled,
		}),
		SpanKind:             spanKind(sp.Kind),
		StartTime:            msTime(sp.StartMs),
		EndTime:              msTime(sp.EndMs),
		Attributes:           attributes(sp.Attributes),
		Resource:             res,
		InstrumentationScope: Scope,
	}
	if sp.ParentSpanID != "" {
		pid, _ := trace.SpanIDFromHex(sp.ParentSpanID)
		stub.Parent = trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: tid, SpanID: pid, TraceFlags: trace.FlagsSampled, Remote: true,
		})
	}
	switch sp.Status {
	case ipc.SpanStatusOK:
		stub.Status = sdktrace.Status{Code: codes.Ok}
	case ipc.SpanStatusError:
		stub.Status = sdktrace.Status{Code: codes.Error, Description: sp.StatusMessage}
	}
	return stub.Snapshot()
}

func spanKind(k string) trace.SpanKind {
	switch k {
	case ipc.SpanKindServer:
		return trace.SpanKindServer
	case ipc.SpanKindClient:
		return trace.SpanKindClient
	case ipc.SpanKindProducer:
		return trace.SpanKindProducer
	case ipc.SpanKindConsumer:
		return trace.SpanKindConsumer
	}
	return trace.SpanKindInternal
}

// msTime converts fractional epoch milliseconds without going through
// nanoseconds as a float, which would round to a quarter microsecond.
func msTime(ms float64) time.Time {
	whole := math.Floor(ms)
	return time.UnixMilli(int64(whole)).Add(time.Duration((ms - whole) * float64(time.Millisecond)))
}

// attributes converts decoded attribute values, in key order so that
// exports are stable.
func attributes(m map[string]any) []attribute.KeyValue {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]attribute.KeyValue, 0, len(keys))
	for _, k := range keys {
		switch v := m[k].(type) {
		case string:
			out = append(out, attribute.String(k, v))
		case bool:
			out = append(out, attribute.Bool(k, v))
		case int64:
			out = append(out, attribute.Int64(k, v))
		case int:
			out = append(out, attribute.Int(k, v))
		case float64:
			out = append(out, attribute.Float64(k, v))
		}
	}
	return out
}
