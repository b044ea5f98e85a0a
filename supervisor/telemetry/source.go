package telemetry

import (
	"encoding/hex"
	"encoding/json"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/mesh"
	"github.com/wattd/wattd/supervisor/logs"
)

// Resource attribute keys wattd sets on every span besides service.name
// and service.version.
const (
	AttrApplicationID = "wattd.application.id"
	AttrWorkerID      = "wattd.worker.id"
	AttrProcessPID    = "process.pid"
)

// Scope is the instrumentation scope of the spans workers report without
// one of their own: those of wattd's worker runtimes (the Node preload's
// server and mesh-client spans). A span that names its scope (an
// application's own, ipc.Span.Scope) is exported under that.
var Scope = instrumentation.Scope{Name: "github.com/wattd/wattd"}

var scopePB = &commonpb.InstrumentationScope{Name: Scope.Name}

// Source is one worker process as a source of spans: it knows the
// resource its spans get. Ingest and IngestBinary are called by the one
// goroutine that reads the worker's control channel.
//
// A Node worker's HTTP spans stay in their decoded binary form until an
// exporter takes them: the OTLP exporters' clients then get them encoded
// straight into protobuf (wire.go), the others as SDK spans. A worker that
// traces every request sends as many spans as it serves requests, and
// the SDK's span objects, made and transformed again for each export,
// cost several times the rest of wattd's work.
type Source struct {
	p      *Pipeline
	log    *zap.Logger
	res    *resource.Resource // for the SDK's exporters (console, file)
	resPB  *resourcepb.Resource
	counts *AppCounts

	warn logs.Limiter // invalid spans: one warning per errorLogEvery
}

// Source returns the span source of application app's worker (slot index
// worker, process pid); nil for a nil Pipeline, and Ingest on a nil
// Source drops the spans.
func (p *Pipeline) Source(app string, worker, pid int) *Source {
	if p == nil {
		return nil
	}
	res := p.resource(app, worker, pid)
	return &Source{
		p:      p,
		log:    p.log.With(zap.String("app", app), zap.Int("worker", worker), zap.Int("pid", pid)),
		res:    res,
		resPB:  resourceProto(res),
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

// resourceProto is res in OTLP's form.
func resourceProto(res *resource.Resource) *resourcepb.Resource {
	out := &resourcepb.Resource{}
	for it := res.Iter(); it.Next(); {
		kv := it.Attribute()
		out.Attributes = append(out.Attributes, &commonpb.KeyValue{Key: string(kv.Key), Value: anyValue(kv.Value)})
	}
	return out
}

func anyValue(v attribute.Value) *commonpb.AnyValue {
	switch v.Type() {
	case attribute.BOOL:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: v.AsBool()}}
	case attribute.INT64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v.AsInt64()}}
	case attribute.FLOAT64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: v.AsFloat64()}}
	}
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v.Emit()}}
}

// Ingest takes the spans member of a JSON spans message: valid spans go to
// every exporter's queue, invalid ones and those that find a queue full
// are dropped and counted. It never blocks.
func (s *Source) Ingest(raw json.RawMessage) {
	if s == nil {
		return
	}
	spans, dropped, firstErr := ipc.DecodeSpans(raw)
	s.received(len(spans), dropped, firstErr)
	if len(spans) == 0 {
		return
	}
	pb := spansFromJSON(spans)
	sizes := make([]int32, len(pb))
	var mem int64
	for i, sp := range pb {
		sizes[i] = int32(proto.Size(sp))
		mem += int64(spanMem(sp))
	}
	s.enqueue(batch{src: s, pb: pb, scopes: scopesOf(spans), sizes: sizes, mem: mem})
}

// IngestBinary is Ingest for a binary spans frame's payload (after its
// tag). The valid records' strings are copied: the caller may reuse the
// payload once this returns, and what the frame held besides them
// (invalid records, bytes after the last one) is not kept.
func (s *Source) IngestBinary(payload []byte) {
	if s == nil {
		return
	}
	blk := blocks.Get().(*spanBlock)
	spans, dropped, firstErr := ipc.DecodeHTTPSpansInto(blk.spans, payload)
	blk.spans = spans
	s.received(len(spans), dropped, firstErr)
	if len(spans) == 0 {
		putBlock(blk)
		return
	}
	blk.keep()
	s.enqueue(batch{src: s, http: blk.spans, blk: blk, mem: blk.mem()})
}

// spanBlock holds a binary frame's spans (whose strings point into data)
// from ingest until every exporter is done with them, then goes back to
// blocks for the next frame: frames of thousands of spans, several a
// second, would otherwise be as many large allocations for the garbage
// collector, whose returning memory to the system is costly. refs counts
// the batches that hold the spans: one per exporter queue, and one more
// per split (batch.split).
type spanBlock struct {
	data  []byte
	spans []ipc.HTTPSpan
	refs  atomic.Int32
}

var blocks = sync.Pool{New: func() any { return new(spanBlock) }}

// maxPooledBlock bounds the frames whose memory is kept for reuse.
const maxPooledBlock = ipc.MaxFrame

// blockSlack is how much larger than its spans need a pooled block's
// memory may be and still hold them; past it the block gets memory of
// the right size. A block's memory is what its spans keep alive while
// they are queued: a frame of one span must not keep the room a frame of
// thousands needed.
const blockSlack = 4096

// oversized reports whether a pooled slice of capacity have is too large
// to hold need.
func oversized(have, need int) bool { return have > 2*need+blockSlack }

// keep copies the strings of b's spans, which point into the frame they
// were decoded from, into b's data, and gives b the memory its spans
// need and little more.
func (b *spanBlock) keep() {
	n := 0
	for i := range b.spans {
		n += len(b.spans[i].MethodTarget) + len(b.spans[i].Host)
	}
	if cap(b.data) < n || oversized(cap(b.data), n) {
		b.data = make([]byte, 0, n)
	}
	// The strings point into data, which must not move: it has the room
	// for all of them from the start.
	data := b.data[:0]
	str := func(s string) string {
		if s == "" {
			return ""
		}
		at := len(data)
		data = append(data, s...)
		return unsafe.String(&data[at], len(s))
	}
	for i := range b.spans {
		h := &b.spans[i]
		h.MethodTarget = str(h.MethodTarget)
		h.Method = h.MethodTarget[:len(h.Method)]
		h.Target = h.MethodTarget[len(h.Method)+1:]
		h.Host = str(h.Host)
	}
	b.data = data
	if sz := int(unsafe.Sizeof(ipc.HTTPSpan{})); oversized(cap(b.spans)*sz, len(b.spans)*sz) {
		b.spans = slices.Clone(b.spans)
	}
}

// mem is the memory b's spans keep alive.
func (b *spanBlock) mem() int64 {
	return int64(cap(b.data)) + int64(cap(b.spans))*int64(unsafe.Sizeof(ipc.HTTPSpan{}))
}

func putBlock(b *spanBlock) {
	if cap(b.data) > maxPooledBlock {
		return
	}
	clear(b.spans) // nothing keeps data's strings alive from here
	b.spans = b.spans[:0]
	blocks.Put(b)
}

// release gives up one hold on b; the last one returns it to the pool.
// Nothing may read the block's spans after its holder released it.
func (b *spanBlock) release() {
	if b != nil && b.refs.Add(-1) == 0 {
		putBlock(b)
	}
}

func (s *Source) received(valid, dropped int, firstErr error) {
	s.counts.Received.Add(uint64(valid + dropped))
	if dropped > 0 {
		s.counts.Invalid.Add(uint64(dropped))
		if n, ok := s.warn.Allow(time.Now(), errorLogEvery); ok {
			s.log.Warn("worker sent invalid spans; they are dropped", zap.Int("dropped", dropped), zap.Error(firstErr), zap.Uint64("messagesSinceLastWarning", n))
		}
	}
}

func (s *Source) enqueue(b batch) {
	if full := s.p.enqueue(b); full > 0 {
		s.counts.QueueFull.Add(uint64(full))
		if n, ok := s.p.fullWarn.Allow(time.Now(), errorLogEvery); ok {
			// An exporter slower than the spans come (a collector that
			// hangs, or too little OTEL_BSP_MAX_QUEUE_SIZE for the load).
			s.log.Warn("an exporter's queue is full; spans are dropped", zap.Int("dropped", full), zap.Uint64("batchesSinceLastWarning", n))
		}
	}
}

// ---- building OTLP spans -------------------------------------------------

// arena hands out the protobuf values of one message's spans from a few
// slices made at once, rather than one allocation per span, attribute and
// value. The values are set field by field: protobuf messages must not be
// copied.
type arena struct {
	spans  []tracepb.Span
	ptrs   []*tracepb.Span
	status []tracepb.Status
	kvs    []commonpb.KeyValue
	vals   []commonpb.AnyValue
	strs   []commonpb.AnyValue_StringValue
	ints   []commonpb.AnyValue_IntValue
	kvPtrs []*commonpb.KeyValue
	ns, nk int
	ids    []byte
}

func newArena(spans, attrs, idBytes int) *arena {
	return &arena{
		spans:  make([]tracepb.Span, spans),
		ptrs:   make([]*tracepb.Span, 0, spans),
		status: make([]tracepb.Status, spans),
		kvs:    make([]commonpb.KeyValue, attrs),
		vals:   make([]commonpb.AnyValue, attrs),
		strs:   make([]commonpb.AnyValue_StringValue, attrs),
		ints:   make([]commonpb.AnyValue_IntValue, attrs),
		kvPtrs: make([]*commonpb.KeyValue, 0, attrs),
		ids:    make([]byte, 0, idBytes),
	}
}

func (a *arena) span() *tracepb.Span {
	sp := &a.spans[len(a.ptrs)]
	a.ptrs = append(a.ptrs, sp)
	return sp
}

// attrs returns the attributes added since mark, as a slice that cannot
// grow into the next span's.
func (a *arena) attrs(mark int) []*commonpb.KeyValue {
	if len(a.kvPtrs) == mark {
		return nil
	}
	return a.kvPtrs[mark:len(a.kvPtrs):len(a.kvPtrs)]
}

func (a *arena) kv(key string) *commonpb.KeyValue {
	kv := &a.kvs[a.nk]
	kv.Key = key
	kv.Value = &a.vals[a.nk]
	a.nk++
	a.kvPtrs = append(a.kvPtrs, kv)
	return kv
}

func (a *arena) str(key, v string) {
	sv := &a.strs[a.ns]
	a.ns++
	sv.StringValue = v
	a.kv(key).Value.Value = sv
}

func (a *arena) int(key string, v int64) {
	iv := &a.ints[a.ns]
	a.ns++
	iv.IntValue = v
	a.kv(key).Value.Value = iv
}

func (a *arena) id(b []byte) []byte {
	n := len(a.ids)
	a.ids = append(a.ids, b...)
	return a.ids[n:len(a.ids):len(a.ids)]
}

func (a *arena) setStatus(sp *tracepb.Span, code tracepb.Status_StatusCode, msg string) {
	st := &a.status[len(a.ptrs)-1]
	st.Code = code
	st.Message = msg
	sp.Status = st
}

// Span flags of OTLP: whether the parent is known to be remote.
const (
	flagsHasIsRemote = uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK)
	flagsIsRemote    = uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK)
)

// maxHTTPAttrs is the most attributes spanFromHTTP gives one span.
const maxHTTPAttrs = 9

// The methods OpenTelemetry's HTTP conventions name; others are "_OTHER".
func knownMethod(m string) bool {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY":
		return true
	}
	return false
}

// Messages of spans whose request failed without a status to show it.
const (
	msgIncomplete = "the connection closed before the response was complete"
	msgNoResponse = "no response"
)

// spanWriter receives one HTTP span as describeHTTP derives it: its
// frame (begin), its attributes in order, its status if any, and end.
type spanWriter interface {
	begin(h *ipc.HTTPSpan, kind tracepb.Span_SpanKind, name string, flags uint32)
	str(key, v string)
	int(key string, v int64)
	status(code tracepb.Status_StatusCode, msg string)
	end()
}

// describeHTTP derives an HTTP span's name, attributes and status, as
// OpenTelemetry's HTTP server and client conventions have them, and hands
// them to w. The name is "METHOD /path" for a server span and "METHOD url"
// for a client span, as Watt names them.
func describeHTTP(h *ipc.HTTPSpan, w spanWriter) {
	incomplete := h.Flags&ipc.SpanBinIncomplete != 0
	if h.Kind == ipc.SpanBinServer {
		flags := flagsHasIsRemote
		if h.HasParent() {
			flags |= flagsIsRemote // the caller is another process
		}
		path, query := h.Target, ""
		for j := 0; j < len(path); j++ {
			if path[j] == '?' {
				path, query = path[:j], path[j+1:]
				break
			}
		}
		w.begin(h, tracepb.Span_SPAN_KIND_SERVER, clipName(h.MethodTarget[:len(h.Method)+1+len(path)]), flags)
		methodAttrs(h.Method, w)
		w.str("url.path", clipValue(path))
		if h.Flags&ipc.SpanBinTLS != 0 {
			w.str("url.scheme", "https")
		} else {
			w.str("url.scheme", "http")
		}
		if query != "" {
			w.str("url.query", clipValue(query))
		}
		if h.Host != "" {
			// Host header: name[:port], or [v6]:port.
			host, port := h.Host, ""
			if c := lastByte(host, ':'); c > lastByte(host, ']') {
				host, port = host[:c], host[c+1:]
			}
			w.str("server.address", clipValue(host))
			if n, ok := portNumber(port); ok {
				w.int("server.port", int64(n))
			}
		}
		if h.Status != 0 {
			w.int("http.response.status_code", int64(h.Status))
		}
		switch {
		case incomplete:
			w.str("error.type", "incomplete")
			w.status(tracepb.Status_STATUS_CODE_ERROR, msgIncomplete)
		case h.Status >= 500: // 4xx is the client's error, not the server's
			w.str("error.type", statusText(h.Status))
			w.status(tracepb.Status_STATUS_CODE_ERROR, "")
		}
		w.end()
		return
	}
	// A client span's parent is the worker's own server span. A mesh call
	// is named by its URL, as Watt names it; a call to another host by its
	// method alone, as OpenTelemetry's HTTP instrumentations name it (a URL
	// there would make every call a span name of its own).
	name := h.MethodTarget
	if _, ok := mesh.AppOf(h.Host); !ok {
		name = h.Method
	}
	w.begin(h, tracepb.Span_SPAN_KIND_CLIENT, clipName(name), flagsHasIsRemote)
	methodAttrs(h.Method, w)
	w.str("url.full", clipValue(h.Target))
	w.str("server.address", clipValue(h.Host))
	w.int("server.port", int64(h.Port))
	switch {
	case h.Status == 0 || incomplete:
		w.str("error.type", "_OTHER")
		w.status(tracepb.Status_STATUS_CODE_ERROR, msgNoResponse)
	default:
		w.int("http.response.status_code", int64(h.Status))
		if h.Status >= 400 {
			w.str("error.type", statusText(h.Status))
			w.status(tracepb.Status_STATUS_CODE_ERROR, "")
		}
	}
	w.end()
}

func methodAttrs(m string, w spanWriter) {
	if knownMethod(m) {
		w.str("http.request.method", m)
		return
	}
	w.str("http.request.method", "_OTHER")
	w.str("http.request.method_original", m)
}

// SpansFromHTTP makes the OTLP spans of a binary frame's HTTP spans (see
// describeHTTP), as the SDK's exporters and tests want them; the OTLP
// exporters get them encoded at once (appendHTTPSpans). Their strings are
// copies: the frame's memory is reused once the spans are exported, and
// an exporter may keep what it is given.
func SpansFromHTTP(in []ipc.HTTPSpan) []*tracepb.Span {
	w := arenaWriter{a: newArena(len(in), len(in)*maxHTTPAttrs, 0)}
	for i := range in {
		h := in[i]
		h.MethodTarget = h.Method + " " + h.Target // a copy
		h.Method = h.MethodTarget[:len(h.Method)]
		h.Target = h.MethodTarget[len(h.Method)+1:]
		h.Host = strings.Clone(h.Host)
		describeHTTP(&h, &w)
	}
	return w.a.ptrs
}

// arenaWriter builds tracepb spans in an arena.
type arenaWriter struct {
	a    *arena
	sp   *tracepb.Span
	mark int
}

func (w *arenaWriter) begin(h *ipc.HTTPSpan, kind tracepb.Span_SpanKind, name string, flags uint32) {
	sp := w.a.span()
	sp.TraceId = h.TraceID[:]
	sp.SpanId = h.SpanID[:]
	if h.HasParent() {
		sp.ParentSpanId = h.ParentSpanID[:]
	}
	sp.Name, sp.Kind, sp.Flags = name, kind, flags
	sp.StartTimeUnixNano = msNanos(h.StartMs)
	sp.EndTimeUnixNano = msNanos(h.EndMs)
	w.sp, w.mark = sp, len(w.a.kvPtrs)
}

func (w *arenaWriter) str(key, v string)       { w.a.str(key, v) }
func (w *arenaWriter) int(key string, v int64) { w.a.int(key, v) }
func (w *arenaWriter) status(code tracepb.Status_StatusCode, msg string) {
	w.a.setStatus(w.sp, code, msg)
}
func (w *arenaWriter) end() { w.sp.Attributes = w.a.attrs(w.mark) }

// statusTexts are the error.type values of the common error statuses,
// made once.
var statusTexts = func() map[uint16]string {
	m := map[uint16]string{}
	for c := uint16(400); c < 600; c++ {
		m[c] = strconv.Itoa(int(c))
	}
	return m
}()

func statusText(c uint16) string {
	if s, ok := statusTexts[c]; ok {
		return s
	}
	return strconv.Itoa(int(c))
}

// portNumber reads a Host header's port: decimal digits, at most 65535,
// as a TCP port is (strconv.Atoi would take a sign and any size).
func portNumber(s string) (int, bool) {
	if len(s) == 0 || len(s) > 5 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, n <= 65535
}

func lastByte(s string, b byte) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == b {
			return i
		}
	}
	return -1
}

// clipName and clipValue cut a string to the span name's and an
// attribute value's limit in characters, on a character boundary.
func clipName(s string) string  { return clipRunes(s, ipc.MaxSpanName) }
func clipValue(s string) string { return clipRunes(s, ipc.MaxAttributeValue) }

func clipRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := 0
	for k := range s {
		if i == n {
			return s[:k]
		}
		i++
	}
	return s
}

// msNanos converts fractional epoch milliseconds to nanoseconds, rounded
// to the microsecond: a double near 1.7e12 ms holds a quarter microsecond
// at best, so finer digits are noise.
func msNanos(ms float64) uint64 {
	whole := math.Floor(ms)
	return uint64(whole)*1e6 + uint64(math.Round((ms-whole)*1e3))*1e3
}

// SpansFromJSON makes the OTLP spans of a JSON message's validated spans
// as wattd exports them (see spansFromJSON), for tests.
func SpansFromJSON(in []ipc.Span) []*tracepb.Span { return spansFromJSON(in) }

// spansFromJSON makes the OTLP spans of a JSON message's validated spans,
// attributes in key order so that exports are stable.
func spansFromJSON(in []ipc.Span) []*tracepb.Span {
	attrs := 0
	var httpFlags []uint32
	for i := range in {
		if in[i].HTTP != nil {
			if httpFlags == nil {
				httpFlags = make([]uint32, len(in))
			}
			httpFlags[i] = withHTTP(&in[i])
		}
		attrs += len(in[i].Attributes)
	}
	a := newArena(len(in), attrs, len(in)*32)
	var buf [16]byte
	dec := func(h string) []byte {
		n, _ := hex.Decode(buf[:], []byte(h)) // validated: lower-case hex
		return a.id(buf[:n])
	}
	var keys []string
	for i := range in {
		s := &in[i]
		sp := a.span()
		sp.TraceId = dec(s.TraceID)
		sp.SpanId = dec(s.SpanID)
		sp.Flags = flagsHasIsRemote
		if s.ParentSpanID != "" {
			sp.ParentSpanId = dec(s.ParentSpanID)
			if s.ParentRemote {
				sp.Flags |= flagsIsRemote
			}
		}
		if s.HTTP != nil {
			sp.Flags = httpFlags[i]
		}
		sp.Name = s.Name
		sp.Kind = spanKind(s.Kind)
		sp.StartTimeUnixNano = msNanos(s.StartMs)
		sp.EndTimeUnixNano = msNanos(s.EndMs)
		keys = keys[:0]
		for k := range s.Attributes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		mark := len(a.kvPtrs)
		for _, k := range keys {
			setValue(a.kv(k).Value, s.Attributes[k])
		}
		sp.Attributes = a.attrs(mark)
		switch s.Status {
		case ipc.SpanStatusOK:
			a.setStatus(sp, tracepb.Status_STATUS_CODE_OK, "")
		case ipc.SpanStatusError:
			a.setStatus(sp, tracepb.Status_STATUS_CODE_ERROR, s.StatusMessage)
		}
		// Events and links are rare (an application's own spans): made
		// outside the arena.
		for _, e := range s.Events {
			sp.Events = append(sp.Events, &tracepb.Span_Event{
				Name: e.Name, TimeUnixNano: msNanos(e.TimeMs), Attributes: keyValues(e.Attributes),
			})
		}
		for _, l := range s.Links {
			tid, _ := hex.DecodeString(l.TraceID) // validated
			sid, _ := hex.DecodeString(l.SpanID)
			sp.Links = append(sp.Links, &tracepb.Span_Link{TraceId: tid, SpanId: sid, Attributes: keyValues(l.Attributes)})
		}
	}
	return a.ptrs
}

// The memory of the parts of an OTLP span, for spanMem: each struct with
// the pointer to it, and a value with the wrapper of its one field.
var (
	memSpan  = int(unsafe.Sizeof(tracepb.Span{}) + unsafe.Sizeof(tracepb.Status{}) + 2*unsafe.Sizeof(uintptr(0)))
	memValue = int(unsafe.Sizeof(commonpb.AnyValue{}) + unsafe.Sizeof(commonpb.AnyValue_StringValue{}) + unsafe.Sizeof(uintptr(0)))
	memKV    = int(unsafe.Sizeof(commonpb.KeyValue{})+unsafe.Sizeof(uintptr(0))) + memValue
	memArray = int(unsafe.Sizeof(commonpb.ArrayValue{}))
	memEvent = int(unsafe.Sizeof(tracepb.Span_Event{}) + unsafe.Sizeof(uintptr(0)))
	memLink  = int(unsafe.Sizeof(tracepb.Span_Link{}) + unsafe.Sizeof(uintptr(0)))
)

// spanMem is the memory a JSON message's span keeps alive in OTLP form:
// its structs and its strings. Its encoded size (proto.Size) says little
// of it: a list item of two bytes in the message takes some 80 here.
func spanMem(sp *tracepb.Span) int {
	n := memSpan + len(sp.TraceId) + len(sp.SpanId) + len(sp.ParentSpanId) + len(sp.Name) + len(sp.GetStatus().GetMessage())
	n += attrsMem(sp.Attributes)
	for _, e := range sp.Events {
		n += memEvent + len(e.Name) + attrsMem(e.Attributes)
	}
	for _, l := range sp.Links {
		n += memLink + len(l.TraceId) + len(l.SpanId) + attrsMem(l.Attributes)
	}
	return n
}

func attrsMem(kvs []*commonpb.KeyValue) int {
	n := 0
	for _, kv := range kvs {
		n += memKV + len(kv.Key) + len(kv.Value.GetStringValue())
		if arr := kv.Value.GetArrayValue(); arr != nil {
			n += memArray
			for _, v := range arr.Values {
				n += memValue + len(v.GetStringValue())
			}
		}
	}
	return n
}

// withHTTP completes a JSON server span that carries its request (http,
// protocol version 5: a server span the application added to) as
// describeHTTP describes a binary one: the derived name when the span has
// none, the derived attributes under the span's own, the derived status
// when the span's is unset. It returns the span's flags.
func withHTTP(s *ipc.Span) uint32 {
	r := s.HTTP
	h := ipc.HTTPSpan{Kind: ipc.SpanBinServer, Status: uint16(r.Status), MethodTarget: r.Method + " " + r.Target, Host: r.Host}
	h.Method, h.Target = h.MethodTarget[:len(r.Method)], h.MethodTarget[len(r.Method)+1:]
	if s.ParentSpanID != "" {
		h.Flags |= ipc.SpanBinParent
	}
	if r.TLS {
		h.Flags |= ipc.SpanBinTLS
	}
	if r.Incomplete {
		h.Flags |= ipc.SpanBinIncomplete
	}
	w := fieldsWriter{attrs: make(map[string]any, maxHTTPAttrs+len(s.Attributes))}
	describeHTTP(&h, &w)
	if s.Name == "" {
		s.Name = w.name
	}
	for k, v := range s.Attributes {
		w.attrs[k] = v
	}
	s.Attributes = w.attrs
	if (s.Status == "" || s.Status == ipc.SpanStatusUnset) && w.code == tracepb.Status_STATUS_CODE_ERROR {
		s.Status, s.StatusMessage = ipc.SpanStatusError, w.msg
	}
	return w.flags
}

// fieldsWriter keeps what describeHTTP derives of a span.
type fieldsWriter struct {
	name  string
	flags uint32
	attrs map[string]any
	code  tracepb.Status_StatusCode
	msg   string
}

func (w *fieldsWriter) begin(_ *ipc.HTTPSpan, _ tracepb.Span_SpanKind, name string, flags uint32) {
	w.name, w.flags = name, flags
}
func (w *fieldsWriter) str(key, v string)       { w.attrs[key] = v }
func (w *fieldsWriter) int(key string, v int64) { w.attrs[key] = v }
func (w *fieldsWriter) status(code tracepb.Status_StatusCode, msg string) {
	w.code, w.msg = code, msg
}
func (w *fieldsWriter) end() {}

// scopesOf is the instrumentation scope of each span (nil for wattd's),
// or nil when every span is wattd's. Spans of one scope share one value.
func scopesOf(in []ipc.Span) []*commonpb.InstrumentationScope {
	var out []*commonpb.InstrumentationScope
	var seen map[ipc.SpanScope]*commonpb.InstrumentationScope
	for i := range in {
		sc := in[i].Scope
		if sc == nil {
			continue
		}
		if out == nil {
			out = make([]*commonpb.InstrumentationScope, len(in))
			seen = map[ipc.SpanScope]*commonpb.InstrumentationScope{}
		}
		pb := seen[*sc]
		if pb == nil {
			pb = &commonpb.InstrumentationScope{Name: sc.Name, Version: sc.Version}
			seen[*sc] = pb
		}
		out[i] = pb
	}
	return out
}

// keyValues is attributes in OTLP's form, in key order.
func keyValues(attrs map[string]any) []*commonpb.KeyValue {
	if len(attrs) == 0 {
		return nil
	}
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]*commonpb.KeyValue, 0, len(keys))
	for _, k := range keys {
		kv := &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{}}
		setValue(kv.Value, attrs[k])
		out = append(out, kv)
	}
	return out
}

// setValue sets an attribute's validated value (ipc.Span's types).
func setValue(av *commonpb.AnyValue, v any) {
	switch v := v.(type) {
	case string:
		av.Value = &commonpb.AnyValue_StringValue{StringValue: v}
	case bool:
		av.Value = &commonpb.AnyValue_BoolValue{BoolValue: v}
	case int64:
		av.Value = &commonpb.AnyValue_IntValue{IntValue: v}
	case int:
		av.Value = &commonpb.AnyValue_IntValue{IntValue: int64(v)}
	case float64:
		av.Value = &commonpb.AnyValue_DoubleValue{DoubleValue: v}
	case []string:
		av.Value = arrayOf(v, func(x string) *commonpb.AnyValue {
			return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: x}}
		})
	case []bool:
		av.Value = arrayOf(v, func(x bool) *commonpb.AnyValue {
			return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: x}}
		})
	case []int64:
		av.Value = arrayOf(v, func(x int64) *commonpb.AnyValue {
			return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: x}}
		})
	case []float64:
		av.Value = arrayOf(v, func(x float64) *commonpb.AnyValue {
			return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: x}}
		})
	}
}

// arrayOf is a list attribute's OTLP value.
func arrayOf[T any](list []T, one func(T) *commonpb.AnyValue) *commonpb.AnyValue_ArrayValue {
	vals := make([]*commonpb.AnyValue, len(list))
	for i, x := range list {
		vals[i] = one(x)
	}
	return &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: vals}}
}

func spanKind(k string) tracepb.Span_SpanKind {
	switch k {
	case ipc.SpanKindServer:
		return tracepb.Span_SPAN_KIND_SERVER
	case ipc.SpanKindClient:
		return tracepb.Span_SPAN_KIND_CLIENT
	case ipc.SpanKindProducer:
		return tracepb.Span_SPAN_KIND_PRODUCER
	case ipc.SpanKindConsumer:
		return tracepb.Span_SPAN_KIND_CONSUMER
	}
	return tracepb.Span_SPAN_KIND_INTERNAL
}
