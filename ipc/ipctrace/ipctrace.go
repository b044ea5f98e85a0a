// Package ipctrace is the tracing part of the Go worker SDK: a Go program
// run by wattd traces with the OpenTelemetry Go SDK and hands its spans to
// wattd over the control channel (spans messages), and wattd exports them
// with the application's and worker's resource, as the runtime's
// "telemetry" key says. The program needs no exporter, endpoint or resource
// of its own.
//
// It is a package of its own so that a Go worker that does not trace does
// not link the OpenTelemetry SDK: package ipc uses the standard library
// only.
//
//	ctl, _ := ipc.Dial()
//	tp := ipctrace.NewTracerProvider(ctl)
//	defer tp.Shutdown(context.Background())
//	srv := &http.Server{Handler: ipctrace.Handler(tp, mux)}
//	client := &http.Client{Transport: ipctrace.Transport(tp, &mesh.Transport{...})}
package ipctrace

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/wattd/wattd/ipc"
)

// maxMessageBytes keeps a spans message well under ipc.MaxFrame, which
// wattd treats as a protocol violation.
const maxMessageBytes = ipc.MaxFrame / 2

// Exporter is an sdktrace.SpanExporter that sends spans to wattd in spans
// messages. Use it behind a batch span processor (NewTracerProvider does).
type Exporter struct {
	ctl *ipc.Control

	mu      sync.Mutex // guards stopped
	stopped bool
}

var _ sdktrace.SpanExporter = (*Exporter)(nil)

// NewExporter returns an exporter that writes to ctl.
func NewExporter(ctl *ipc.Control) *Exporter { return &Exporter{ctl: ctl} }

// ExportSpans sends spans in as many messages as the protocol's limits
// need. Attributes that are not strings, numbers or booleans are sent as
// strings; values over the limits are cut.
func (e *Exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return nil
	}
	var batch []byte
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		msg := &ipc.Message{Type: ipc.TypeSpans, Spans: append(append([]byte{'['}, batch...), ']')}
		batch, n = batch[:0], 0
		return e.ctl.Send(msg)
	}
	for _, ro := range spans {
		if err := ctx.Err(); err != nil {
			return err
		}
		s := Span(ro)
		if e.ctl.Version < 4 {
			olderForm(&s)
		}
		data, err := encodeWithin(&s, maxMessageBytes-2)
		if err != nil {
			return fmt.Errorf("ipctrace: encode span %s: %w", s.SpanID, err)
		}
		if n == ipc.MaxSpansPerMessage || len(batch)+len(data)+3 > maxMessageBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		if n > 0 {
			batch = append(batch, ',')
		}
		batch = append(batch, data...)
		n++
	}
	return flush()
}

// olderForm is s as a wattd welcoming at a version before 4 takes it: no
// events, links or scope, list attributes as their JSON text.
func olderForm(s *ipc.Span) {
	s.Events, s.Links, s.Scope = nil, nil, nil
	for k, v := range s.Attributes {
		switch v.(type) {
		case []string, []bool, []int64, []float64:
			b, _ := json.Marshal(v)
			s.Attributes[k] = cut(string(b), ipc.MaxAttributeValue)
		}
	}
}

// encodeWithin encodes s in at most limit bytes: a span over it (events
// and attributes at their limits, with values that JSON escapes six bytes
// a character) loses the later half of whichever of its events,
// attributes (by key order) and links takes the most room, until it fits.
func encodeWithin(s *ipc.Span, limit int) ([]byte, error) {
	data, err := json.Marshal(s)
	for err == nil && len(data) > limit {
		ev, at, ln := jsonSize(s.Events), jsonSize(s.Attributes), jsonSize(s.Links)
		switch {
		case ev == 0 && at == 0 && ln == 0:
			return nil, fmt.Errorf("%d bytes without attributes, events or links", len(data))
		case ev >= at && ev >= ln:
			s.Events = s.Events[:len(s.Events)/2]
		case at >= ln:
			keys := slices.Sorted(maps.Keys(s.Attributes))
			for _, k := range keys[len(keys)/2:] {
				delete(s.Attributes, k)
			}
		default:
			s.Links = s.Links[:len(s.Links)/2]
		}
		data, err = json.Marshal(s)
	}
	return data, err
}

// jsonSize is the length of v's JSON, 0 for an empty list or map.
func jsonSize[T any](v T) int {
	b, _ := json.Marshal(v)
	if len(b) <= 2 || string(b) == "null" {
		return 0
	}
	return len(b)
}

// Shutdown stops sending; spans exported after it are dropped.
func (e *Exporter) Shutdown(context.Context) error {
	e.mu.Lock()
	e.stopped = true
	e.mu.Unlock()
	return nil
}

// Span converts an SDK span to the protocol's form.
func Span(ro sdktrace.ReadOnlySpan) ipc.Span {
	sc := ro.SpanContext()
	s := ipc.Span{
		TraceID: sc.TraceID().String(),
		SpanID:  sc.SpanID().String(),
		Name:    cut(ro.Name(), ipc.MaxSpanName),
		Kind:    kind(ro.SpanKind()),
		StartMs: epochMs(ro.StartTime().UnixNano()),
		EndMs:   epochMs(ro.EndTime().UnixNano()),
		Status:  ipc.SpanStatusUnset,
	}
	if s.Name == "" {
		s.Name = "span"
	}
	if s.EndMs < s.StartMs {
		s.EndMs = s.StartMs
	}
	if p := ro.Parent(); p.SpanID().IsValid() {
		s.ParentSpanID, s.ParentRemote = p.SpanID().String(), p.IsRemote()
	}
	switch st := ro.Status(); st.Code {
	case codes.Ok:
		s.Status = ipc.SpanStatusOK
	case codes.Error:
		s.Status, s.StatusMessage = ipc.SpanStatusError, cut(st.Description, ipc.MaxStatusMessage)
	}
	s.Attributes = attributes(ro.Attributes())
	if sc := ro.InstrumentationScope(); sc.Name != "" {
		s.Scope = &ipc.SpanScope{Name: cut(sc.Name, ipc.MaxSpanName), Version: cut(sc.Version, ipc.MaxSpanName)}
	}
	for _, e := range ro.Events() {
		if len(s.Events) == ipc.MaxSpanEvents {
			break
		}
		name := cut(e.Name, ipc.MaxSpanName)
		if name == "" {
			name = "event"
		}
		t := epochMs(e.Time.UnixNano())
		if t <= 0 {
			t = s.StartMs
		}
		s.Events = append(s.Events, ipc.SpanEvent{Name: name, TimeMs: t, Attributes: attributes(e.Attributes)})
	}
	for _, l := range ro.Links() {
		if len(s.Links) == ipc.MaxSpanLinks {
			break
		}
		if !l.SpanContext.IsValid() {
			continue
		}
		s.Links = append(s.Links, ipc.SpanLink{
			TraceID: l.SpanContext.TraceID().String(), SpanID: l.SpanContext.SpanID().String(), Attributes: attributes(l.Attributes),
		})
	}
	return s
}

// attributes converts SDK attributes within the protocol's limits; nil
// for none.
func attributes(attrs []attribute.KeyValue) map[string]any {
	if len(attrs) == 0 {
		return nil
	}
	out := make(map[string]any, min(len(attrs), ipc.MaxSpanAttributes))
	for _, kv := range attrs {
		if len(out) == ipc.MaxSpanAttributes {
			break
		}
		k := string(kv.Key)
		if k == "" || !utf8.ValidString(k) || utf8.RuneCountInString(k) > ipc.MaxAttributeKey {
			continue
		}
		out[k] = value(kv.Value)
	}
	return out
}

func epochMs(ns int64) float64 {
	return float64(ns/1e6) + float64(ns%1e6)/1e6
}

func kind(k trace.SpanKind) string {
	switch k {
	case trace.SpanKindServer:
		return ipc.SpanKindServer
	case trace.SpanKindClient:
		return ipc.SpanKindClient
	case trace.SpanKindProducer:
		return ipc.SpanKindProducer
	case trace.SpanKindConsumer:
		return ipc.SpanKindConsumer
	}
	return ipc.SpanKindInternal
}

func value(v attribute.Value) any {
	switch v.Type() {
	case attribute.BOOL:
		return v.AsBool()
	case attribute.INT64:
		return v.AsInt64()
	case attribute.FLOAT64:
		if f := v.AsFloat64(); !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f
		}
		return strconv.FormatFloat(v.AsFloat64(), 'g', -1, 64)
	case attribute.STRING:
		return cut(v.AsString(), ipc.MaxAttributeValue)
	case attribute.STRINGSLICE:
		l := first(v.AsStringSlice())
		for i := range l {
			l[i] = cut(l[i], ipc.MaxAttributeValue)
		}
		return l
	case attribute.BOOLSLICE:
		return first(v.AsBoolSlice())
	case attribute.INT64SLICE:
		return first(v.AsInt64Slice())
	case attribute.FLOAT64SLICE:
		l := first(v.AsFloat64Slice())
		for _, f := range l {
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return cut(v.Emit(), ipc.MaxAttributeValue) // JSON has no such numbers
			}
		}
		return l
	}
	return cut(v.Emit(), ipc.MaxAttributeValue)
}

// first is a copy of a list's first ipc.MaxArrayItems items.
func first[T any](l []T) []T {
	return append([]T{}, l[:min(len(l), ipc.MaxArrayItems)]...)
}

// cut shortens s to n characters, replacing invalid UTF-8.
func cut(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}

// NewTracerProvider returns a tracer provider that samples as the
// application's app info says (wattd's OTEL_TRACES_SAMPLER; by default
// every trace, as Watt does), and batches spans to wattd as the protocol
// asks: at most every 200 ms, at most 4096 queued. Shut it down (or
// ForceFlush it) before telling wattd the worker is drained, so the last
// spans go too. An sdktrace.WithSampler among opts replaces the sampler.
func NewTracerProvider(ctl *ipc.Control, opts ...sdktrace.TracerProviderOption) *sdktrace.TracerProvider {
	var tr *ipc.TracingInfo
	if info, err := ipc.ReadAppInfo(); err == nil {
		tr = info.Tracing
	}
	base := []sdktrace.TracerProviderOption{
		sdktrace.WithSampler(Sampler(tr)),
		sdktrace.WithBatcher(NewExporter(ctl),
			sdktrace.WithBatchTimeout(200_000_000), // 200 ms
			sdktrace.WithMaxQueueSize(4096),
			sdktrace.WithMaxExportBatchSize(ipc.MaxSpansPerMessage)),
	}
	return sdktrace.NewTracerProvider(append(base, opts...)...)
}

// Sampler is the sampler an app info's tracing settings name, the same
// decisions as the Node workers' preload makes: parentbased_always_on
// when tr is nil or names none, or one wattd does not know.
func Sampler(tr *ipc.TracingInfo) sdktrace.Sampler {
	name := ""
	if tr != nil {
		name = tr.Sampler
	}
	parent := true
	if rest, ok := strings.CutPrefix(name, "parentbased_"); ok {
		name = rest
	} else if name != "" {
		parent = false
	}
	var root sdktrace.Sampler
	switch name {
	case "always_off":
		root = sdktrace.NeverSample()
	case "traceidratio":
		ratio := 1.0
		if tr.Ratio != nil {
			ratio = *tr.Ratio
		}
		root = sdktrace.TraceIDRatioBased(ratio)
	case "always_on":
		root = sdktrace.AlwaysSample()
	default:
		root, parent = sdktrace.AlwaysSample(), true
	}
	if parent {
		return sdktrace.ParentBased(root)
	}
	return root
}

// propagator is W3C trace context: traceparent and tracestate, which the
// Node workers read and write too.
var propagator = propagation.TraceContext{}

// tracerName is the instrumentation scope of the helpers' spans.
const tracerName = "github.com/wattd/wattd/ipc/ipctrace"

// Handler makes a server span for every request h serves, child of the
// caller's span when the request carries a traceparent. The span is the
// request context's current span, so spans the handler starts are its
// children and Transport calls made with the request's context carry it on.
//
// Requests that the application's telemetry.skip rules name (read from
// the app info file when Handler is called) get no span; their context
// still carries the caller's trace on.
func Handler(tp trace.TracerProvider, h http.Handler) http.Handler {
	tracer := tp.Tracer(tracerName)
	skip := skipRules()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		if skip.match(r) {
			h.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		ctx, span := tracer.Start(ctx, r.Method+" "+r.URL.Path, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(
				attribute.String("http.request.method", r.Method),
				attribute.String("url.path", r.URL.Path),
			))
		defer span.End()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r.WithContext(ctx))
		span.SetAttributes(attribute.Int("http.response.status_code", rec.status))
		if rec.status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(rec.status))
		}
	})
}

// skipList is the application's telemetry.skip, compiled.
type skipList []skipRule

type skipRule struct {
	method string
	path   string         // exact, when re is nil
	re     *regexp.Regexp // a rule written /.../
}

// skipRules reads the skip rules of the app info file; none outside wattd.
// A regular expression Go cannot compile (one using JavaScript-only
// syntax) is left out.
func skipRules() skipList {
	info, err := ipc.ReadAppInfo()
	if err != nil || info.Tracing == nil {
		return nil
	}
	var out skipList
	for _, s := range info.Tracing.Skip {
		r := skipRule{method: s.Method, path: s.Path}
		if len(s.Path) > 2 && strings.HasPrefix(s.Path, "/") && strings.HasSuffix(s.Path, "/") {
			re, err := regexp.Compile(s.Path[1 : len(s.Path)-1])
			if err != nil {
				continue
			}
			r.re = re
		}
		out = append(out, r)
	}
	return out
}

func (l skipList) match(r *http.Request) bool {
	for _, s := range l {
		if s.method != "" && s.method != r.Method {
			continue
		}
		if s.re != nil && s.re.MatchString(r.URL.Path) || s.re == nil && s.path == r.URL.Path {
			return true
		}
	}
	return false
}

type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wroteHeader {
		s.status, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Transport makes a client span for every request sent through base (nil
// means http.DefaultTransport), child of the request context's span, and
// sends its traceparent, so the called application's server span is the
// client span's child.
func Transport(tp trace.TracerProvider, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{tracer: tp.Tracer(tracerName), base: base}
}

type transport struct {
	tracer trace.Tracer
	base   http.RoundTripper
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx, span := t.tracer.Start(r.Context(), r.Method, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("http.request.method", r.Method),
			attribute.String("server.address", r.URL.Hostname()),
			attribute.String("url.full", r.URL.String()),
		))
	defer span.End()
	r = r.Clone(ctx) // a RoundTripper must not change the caller's request
	propagator.Inject(ctx, propagation.HeaderCarrier(r.Header))
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return nil, err
	}
	span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	if resp.StatusCode >= 400 {
		span.SetStatus(codes.Error, http.StatusText(resp.StatusCode))
	}
	return resp, nil
}

// Enabled reports whether wattd traces this application (its app info
// file has "tracing"): when it does not, spans sent are ignored, and a
// program may skip making them.
func Enabled() bool {
	info, err := ipc.ReadAppInfo()
	return err == nil && info.Tracing != nil
}
