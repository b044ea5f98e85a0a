// Package telemetry owns wattd's tracing pipeline: workers send their
// finished spans on the control channel (ipc.TypeSpans); this package
// validates them, gives them the resource of the worker they came from and
// exports them as watt.json's "telemetry" key says: over OTLP (HTTP or
// gRPC) with the clients of the OpenTelemetry OTLP trace exporters, to a
// Zipkin server's span API (zipkin.go), or to stdout or a file with the
// SDK's stdout exporter.
//
// Nothing here may hold up supervision: a control channel's reader hands
// spans over without waiting (a full queue drops them, counted), exports
// run on a goroutine of each exporter's own, and shutdown flushes within a
// deadline.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wattd/wattd/supervisor/secrets"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"go.uber.org/zap"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/config"
	"github.com/wattd/wattd/supervisor/logs"
	"github.com/wattd/wattd/supervisor/textclip"
)

// Defaults of the pipeline.
const (
	// DefaultQueueSize bounds the spans waiting for one exporter: four
	// workers' worth of their own queue (4096 each) before any is dropped.
	DefaultQueueSize = 16384
	// DefaultQueueBytes bounds the memory the spans waiting for one
	// exporter keep alive (spanMem, batch.mem). A span may legally carry
	// close to a frame's worth of attributes and events (1 MiB), so the
	// count alone would let a queue hold gigabytes while its collector is
	// slow. 16384 ordinary spans take a few MiB.
	DefaultQueueBytes = 64 << 20
	// DefaultBatchSize is the most spans one export carries. wattd gathers
	// the spans of every worker, as a collector does, so its batches are
	// larger than an SDK's (512): each export costs a request and a few
	// wake-ups whatever it carries. maxExportBytes bounds them too.
	DefaultBatchSize = 4096
	// maxExportBytes bounds the encoded spans of one export (batch.spanSize)
	// before it holds DefaultBatchSize spans: well under the 4 MiB a
	// collector's gRPC receiver takes by default. One export mixes the
	// spans of every application, so one too large would lose them all.
	// A span larger on its own (an application's, with many events) goes
	// alone.
	maxExportBytes = 1 << 20
	// DefaultInterval is how long a span waits for its batch to fill.
	DefaultInterval = time.Second
	// DefaultExportTimeout bounds one export, retries included.
	DefaultExportTimeout = 30 * time.Second
	// errorLogEvery is the least time between two logs of one exporter's
	// failures, or of one worker's invalid spans.
	errorLogEvery = 30 * time.Second
)

// Options configure New.
type Options struct {
	Config config.Telemetry
	Logger *zap.Logger
	// Stdout is where the console exporter writes; default os.Stdout
	// (wattd's own log goes to stderr, so the two never mix lines).
	Stdout        io.Writer
	QueueSize     int
	QueueBytes    int64 // default DefaultQueueBytes
	BatchSize     int
	Interval      time.Duration
	ExportTimeout time.Duration
}

// Pipeline is the running tracing pipeline of one runtime.
type Pipeline struct {
	cfg   config.Telemetry
	log   *zap.Logger
	sinks []*sink

	closed atomic.Bool
	// fullWarn: one warning of spans dropped at a full queue per
	// errorLogEvery, for every worker together.
	fullWarn logs.Limiter

	countsMu sync.Mutex            // guards counts
	counts   map[string]*AppCounts // by application id
}

// AppCounts are one application's span counters since wattd started.
type AppCounts struct {
	Received  atomic.Uint64 // spans that arrived from its workers, valid or not
	Invalid   atomic.Uint64 // dropped: they broke the spans message's rules
	QueueFull atomic.Uint64 // dropped: an exporter's queue was full, in spans or bytes (counted once per span)
	// ExportFailed counts spans an exporter could not send (the
	// collector refused them, failed, or did not answer in time): once
	// per span and exporter that failed.
	ExportFailed atomic.Uint64
}

// Counts is a snapshot of AppCounts.
type Counts struct {
	Received, Invalid, QueueFull, ExportFailed uint64
}

// New builds the exporters the configuration names and starts them. A
// configuration with tracing off gives a nil Pipeline and no error; the
// methods of a nil Pipeline do nothing.
func New(opts Options) (_ *Pipeline, err error) {
	if !opts.Config.Enabled {
		return nil, nil
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	// Unset options follow the variables of the SDK's batch span
	// processor, which this queue stands in for, then the defaults.
	if opts.QueueSize <= 0 {
		opts.QueueSize = envInt("OTEL_BSP_MAX_QUEUE_SIZE", DefaultQueueSize)
	}
	if opts.QueueBytes <= 0 {
		opts.QueueBytes = DefaultQueueBytes
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = min(envInt("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", DefaultBatchSize), opts.QueueSize)
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Duration(envInt("OTEL_BSP_SCHEDULE_DELAY", int(DefaultInterval/time.Millisecond))) * time.Millisecond
	}
	if opts.ExportTimeout <= 0 {
		opts.ExportTimeout = time.Duration(envInt("OTEL_BSP_EXPORT_TIMEOUT", int(DefaultExportTimeout/time.Millisecond))) * time.Millisecond
	}
	p := &Pipeline{cfg: opts.Config, log: opts.Logger, counts: map[string]*AppCounts{}}
	defer func() {
		if err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = p.Shutdown(ctx)
		}
	}()
	setErrorHandler(opts.Logger)
	if opts.Config.DiagLogger {
		otel.SetLogger(logr.New(diagSink{opts.Logger.Named("otel")}))
	}
	for _, ec := range opts.Config.Exporters {
		var diag *zap.Logger // with diagLogger
		if opts.Config.DiagLogger {
			diag = opts.Logger
		}
		exp, closer, err := newExporter(ec, opts.Stdout, opts.Config.ServiceName, diag)
		if err != nil {
			return p, fmt.Errorf("telemetry exporter %s (%s): %w", ec.Pointer, ec.Type, err)
		}
		if exp == nil {
			continue // memory: kept nowhere
		}
		s := &sink{
			name:     describe(ec),
			exp:      exp,
			closer:   closer,
			queue:    make(chan batch, opts.QueueSize),
			limit:    int64(opts.QueueSize),
			memLimit: opts.QueueBytes,
			stop:     make(chan struct{}),
			done:     make(chan struct{}),
			batch:    opts.BatchSize,
			interval: opts.Interval,
			timeout:  opts.ExportTimeout,
			diag:     opts.Config.DiagLogger,
		}
		s.log = opts.Logger.With(zap.String("exporter", s.name))
		p.sinks = append(p.sinks, s)
		go s.run()
	}
	names := make([]string, len(p.sinks))
	for i, s := range p.sinks {
		names[i] = s.name
	}
	opts.Logger.Info("tracing on", zap.Strings("exporters", names))
	return p, nil
}

// envInt reads a positive integer from the environment; anything else
// gives def.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// otlpEnvEndpoint is where the OTLP exporter of protocol sends without a
// url in watt.json, as its client reads the OpenTelemetry variables:
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as it is, else
// OTEL_EXPORTER_OTLP_ENDPOINT (with /v1/traces over HTTP), else the
// default, localhost:4318 over HTTP and 4317 over gRPC.
func otlpEnvEndpoint(protocol string, getenv func(string) string) string {
	if e := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")); e != "" {
		return e
	}
	base := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT"))
	if protocol == config.ProtocolGRPC {
		if base == "" {
			return "http://localhost:4317"
		}
		return base
	}
	if base == "" {
		base = "http://localhost:4318"
	}
	return strings.TrimSuffix(base, "/") + "/v1/traces"
}

// describe names an exporter for logs: its type and where it sends.
func describe(ec config.Exporter) string {
	switch ec.Type {
	case config.ExporterOTLP:
		target := ec.URL
		if target == "" {
			target = otlpEnvEndpoint(ec.Protocol, os.Getenv) + " (from the environment)"
		}
		return "otlp/" + ec.Protocol + " " + secrets.URL(target)
	case config.ExporterFile:
		return "file " + ec.Path
	case config.ExporterZipkin:
		return "zipkin " + secrets.URL(ec.URL)
	default:
		return ec.Type
	}
}

// newExporter makes the exporter of one configured exporter. The OTLP
// exporters' clients read OTEL_EXPORTER_OTLP_* themselves; what watt.json
// says wins over those. closer, when not nil, is closed after the
// exporter's shutdown.
func newExporter(ec config.Exporter, stdout io.Writer, service func(string) string, diag *zap.Logger) (exporter, io.Closer, error) {
	ctx := context.Background()
	switch ec.Type {
	case config.ExporterOTLP:
		var c otlptrace.Client
		if ec.Protocol == config.ProtocolGRPC {
			var o []otlptracegrpc.Option
			if ec.URL != "" {
				o = append(o, otlptracegrpc.WithEndpointURL(ec.URL))
			}
			if len(ec.Headers) > 0 {
				o = append(o, otlptracegrpc.WithHeaders(ec.Headers))
			}
			c = otlptracegrpc.NewClient(o...)
		} else {
			var o []otlptracehttp.Option
			if ec.URL != "" {
				o = append(o, otlptracehttp.WithEndpointURL(ec.URL))
			}
			if len(ec.Headers) > 0 {
				o = append(o, otlptracehttp.WithHeaders(ec.Headers))
			}
			c = otlptracehttp.NewClient(o...)
		}
		if err := c.Start(ctx); err != nil {
			return nil, nil, err
		}
		return &otlpExporter{client: c}, nil, nil
	case config.ExporterConsole:
		e, err := stdouttrace.New(stdouttrace.WithWriter(stdout))
		return sdkExporter{e}, nil, err
	case config.ExporterFile:
		f, err := os.OpenFile(ec.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, nil, err
		}
		e, err := stdouttrace.New(stdouttrace.WithWriter(f))
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		return sdkExporter{e}, f, nil
	case config.ExporterZipkin:
		z := newZipkinExporter(ec.URL, ec.Headers, service)
		if diag != nil {
			z.diag = diag.With(zap.String("exporter", describe(ec)))
		}
		return z, nil, nil
	case config.ExporterMemory:
		return nil, nil, nil
	}
	return nil, nil, fmt.Errorf("unknown exporter type %q", ec.Type)
}

var errorHandlerOnce sync.Once

// setErrorHandler sends the OpenTelemetry SDK's own error reports (which
// otherwise go to the standard library's log) to wattd's log, at most one
// every errorLogEvery.
func setErrorHandler(log *zap.Logger) {
	errorHandlerOnce.Do(func() {
		var lim logs.Limiter
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			if n, ok := lim.Allow(time.Now(), errorLogEvery); ok {
				log.Warn("OpenTelemetry SDK error", zap.Error(err), zap.Uint64("suppressed", n))
			}
		}))
	})
}

// appCounts returns the counters of app, made on first use.
func (p *Pipeline) appCounts(app string) *AppCounts {
	p.countsMu.Lock()
	defer p.countsMu.Unlock()
	c := p.counts[app]
	if c == nil {
		c = &AppCounts{}
		p.counts[app] = c
	}
	return c
}

// Counts returns every application's counters; nil for a nil Pipeline.
func (p *Pipeline) Counts() map[string]Counts {
	if p == nil {
		return nil
	}
	p.countsMu.Lock()
	defer p.countsMu.Unlock()
	out := make(map[string]Counts, len(p.counts))
	for app, c := range p.counts {
		out[app] = Counts{Received: c.Received.Load(), Invalid: c.Invalid.Load(), QueueFull: c.QueueFull.Load(), ExportFailed: c.ExportFailed.Load()}
	}
	return out
}

// batch is the spans of one message from one worker: OTLP spans (from a
// JSON message) or HTTP spans (from a binary frame).
type batch struct {
	src *Source
	pb  []*tracepb.Span
	// scopes, when not nil, is the instrumentation scope of each of pb
	// (nil for wattd's): an application's own spans name their tracer.
	scopes []*commonpb.InstrumentationScope
	// sizes is the encoded size of each of pb (proto.Size), taken once
	// when the message arrives: exports are cut by it.
	sizes []int32
	http  []ipc.HTTPSpan
	blk   *spanBlock // holds http's memory; released once exported or dropped
	// mem is the memory the message's spans keep alive until every
	// exporter is done with them, counted against each queue's byte
	// bound. A split batch's parts keep the whole of it.
	mem int64
}

func (b *batch) len() int { return len(b.pb) + len(b.http) }

// scope is the instrumentation scope of pb[i] in the SDK's form.
func (b *batch) scope(i int) instrumentation.Scope {
	if b.scopes == nil || b.scopes[i] == nil {
		return Scope
	}
	return instrumentation.Scope{Name: b.scopes[i].Name, Version: b.scopes[i].Version}
}

// spanSize is the bytes span i of b takes in an export: exactly, for a
// JSON message's span; for an HTTP span, an estimate of what describeHTTP
// writes. Its name and url.path or url.full repeat the target, and its
// attribute keys, ids and times take 170 to 330 bytes more, by its kind
// and status: an HTTP span's strings are bounded, so a batch of them is
// never far from its estimate.
func (b *batch) spanSize(i int) int {
	if b.pb != nil {
		return int(b.sizes[i])
	}
	h := &b.http[i]
	return httpSpanBytes + 2*len(h.MethodTarget) + len(h.Host)
}

// httpSpanBytes is what an HTTP span's export takes besides its strings,
// on average.
const httpSpanBytes = 256

// fit returns how many of b's first spans fit in an export that has room
// for spans more spans and bytes more bytes, and their size. first says
// the export is empty: its first span goes in whatever its size, alone
// if it must.
func (b *batch) fit(spans, bytes int, first bool) (n, size int) {
	for n < b.len() && n < spans {
		sz := b.spanSize(n)
		if size+sz > bytes && !(first && n == 0) {
			break
		}
		size += sz
		n++
	}
	return n, size
}

// split returns the first n spans of b and the rest, each holding b's
// block.
func (b batch) split(n int) (head, tail batch) {
	head, tail = b, b
	if b.blk != nil {
		b.blk.refs.Add(1)
	}
	if b.pb != nil {
		head.pb, tail.pb = b.pb[:n:n], b.pb[n:]
		head.sizes, tail.sizes = b.sizes[:n:n], b.sizes[n:]
		if b.scopes != nil {
			head.scopes, tail.scopes = b.scopes[:n:n], b.scopes[n:]
		}
	} else {
		head.http, tail.http = b.http[:n:n], b.http[n:]
	}
	return head, tail
}

// enqueue hands a message's spans to every exporter without waiting; it
// returns how many spans found at least one exporter's queue full.
func (p *Pipeline) enqueue(b batch) (full int) {
	n := b.len()
	if b.blk != nil {
		// Enqueueing holds the block; each queue that takes the batch
		// holds it too, from before it can see it.
		b.blk.refs.Store(1)
		defer b.blk.release()
	}
	if p.closed.Load() {
		return n
	}
	for _, s := range p.sinks {
		if !s.reserve(n, b.mem) {
			full = n
			continue
		}
		if b.blk != nil {
			b.blk.refs.Add(1)
		}
		select {
		case s.queue <- b:
		default:
			s.unreserve(n, b.mem)
			full = n
			b.blk.release()
		}
	}
	return full
}

// exporter is where a sink's batches go.
type exporter interface {
	export(ctx context.Context, batches []batch) error
	shutdown(ctx context.Context) error
}

// otlpExporter uploads spans with an OTLP exporter's client, one
// ResourceSpans per worker. HTTP spans are encoded into wire, which is
// reused from one export to the next: the client has marshaled the
// request by the time UploadTraces returns. A sink's one goroutine uses
// it.
type otlpExporter struct {
	client otlptrace.Client
	wire   wireWriter
}

func (e *otlpExporter) export(ctx context.Context, batches []batch) error {
	type group struct {
		ss    *tracepb.ScopeSpans
		rs    *tracepb.ResourceSpans
		other map[scopeKey]*tracepb.ScopeSpans // spans of other scopes than wattd's
		http  []*batch
		start int
	}
	var groups []*group
	bySource := make(map[*Source]*group, 4)
	rss := make([]*tracepb.ResourceSpans, 0, 4)
	for i := range batches {
		b := &batches[i]
		g := bySource[b.src]
		if g == nil {
			g = &group{ss: &tracepb.ScopeSpans{Scope: scopePB}}
			bySource[b.src] = g
			groups = append(groups, g)
			g.rs = &tracepb.ResourceSpans{
				Resource: b.src.resPB, SchemaUrl: b.src.res.SchemaURL(), ScopeSpans: []*tracepb.ScopeSpans{g.ss},
			}
			rss = append(rss, g.rs)
		}
		if b.scopes == nil {
			g.ss.Spans = append(g.ss.Spans, b.pb...)
		} else {
			for j, sp := range b.pb {
				sc := b.scopes[j]
				if sc == nil {
					g.ss.Spans = append(g.ss.Spans, sp)
					continue
				}
				k := scopeKey{sc.Name, sc.Version}
				ss := g.other[k]
				if ss == nil {
					if g.other == nil {
						g.other = map[scopeKey]*tracepb.ScopeSpans{}
					}
					ss = &tracepb.ScopeSpans{Scope: sc}
					g.other[k] = ss
					g.rs.ScopeSpans = append(g.rs.ScopeSpans, ss)
				}
				ss.Spans = append(ss.Spans, sp)
			}
		}
		if len(b.http) > 0 {
			g.http = append(g.http, b)
		}
	}
	w := &e.wire
	w.out = w.out[:0]
	for _, g := range groups {
		g.start = len(w.out)
		for _, b := range g.http {
			for j := range b.http {
				describeHTTP(&b.http[j], w)
			}
		}
	}
	for i, g := range groups {
		end := len(w.out)
		if i+1 < len(groups) {
			end = groups[i+1].start
		}
		if end > g.start {
			g.ss.ProtoReflect().SetUnknown(protoreflect.RawFields(w.out[g.start:end]))
		}
	}
	return e.client.UploadTraces(ctx, rss)
}

func (e *otlpExporter) shutdown(ctx context.Context) error { return e.client.Stop(ctx) }

// scopeKey tells instrumentation scopes apart.
type scopeKey struct{ name, version string }

// sdkExporter hands the SDK's span form to one of its exporters.
type sdkExporter struct{ exp sdktrace.SpanExporter }

func (e sdkExporter) export(ctx context.Context, batches []batch) error {
	n := 0
	for i := range batches {
		n += batches[i].len()
	}
	ro := make([]sdktrace.ReadOnlySpan, 0, n)
	for _, b := range batches {
		for j, sp := range b.pb {
			ro = append(ro, ReadOnlyIn(sp, b.src.res, b.scope(j)))
		}
		if len(b.http) > 0 {
			for _, sp := range SpansFromHTTP(b.http) {
				ro = append(ro, ReadOnly(sp, b.src.res))
			}
		}
	}
	return e.exp.ExportSpans(ctx, ro)
}

func (e sdkExporter) shutdown(ctx context.Context) error { return e.exp.Shutdown(ctx) }

// Shutdown stops taking spans, exports what is queued and shuts the
// exporters down, all within ctx's deadline; spans still queued then are
// lost. It is safe to call more than once and on a nil Pipeline.
func (p *Pipeline) Shutdown(ctx context.Context) error {
	if p == nil || !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	var wg sync.WaitGroup
	errs := make([]error, len(p.sinks))
	for i, s := range p.sinks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.shutdown(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// sink is one exporter and its queue.
type sink struct {
	name     string
	log      *zap.Logger
	exp      exporter
	closer   io.Closer
	queue    chan batch
	queued   atomic.Int64 // spans in queue
	limit    int64        // most spans in queue
	mem      atomic.Int64 // what the queue's batches keep alive (batch.mem)
	memLimit int64        // most of it
	batch    int
	interval time.Duration
	timeout  time.Duration
	diag     bool // watt.json's diagLogger: a line for every export

	stop     chan struct{} // closed by shutdown
	stopOnce sync.Once
	flushCtx atomic.Pointer[context.Context] // shutdown's context, set before stop closes
	done     chan struct{}                   // closed when run has returned

	failures logs.Limiter // one warning per errorLogEvery
	exported atomic.Uint64
	failed   atomic.Uint64
}

// reserve counts a message of n spans keeping mem bytes alive into s's
// queue, unless the queue would then be over either of its bounds.
func (s *sink) reserve(n int, mem int64) bool {
	if s.queued.Add(int64(n)) > s.limit {
		s.queued.Add(-int64(n))
		return false
	}
	if s.mem.Add(mem) > s.memLimit {
		s.unreserve(n, mem)
		return false
	}
	return true
}

// unreserve takes a message out of the queue's counts.
func (s *sink) unreserve(n int, mem int64) {
	s.queued.Add(-int64(n))
	s.mem.Add(-mem)
}

// run batches the queue into exports until shutdown, then exports what
// is left within shutdown's deadline.
func (s *sink) run() {
	defer close(s.done)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	var buf []batch
	n := 0    // spans in buf
	size := 0 // their estimated bytes
	// take adds a message's spans, exporting every time s.batch are
	// waiting or the next span would take them past maxExportBytes: a
	// message larger than the room left is split.
	take := func(ctx context.Context, b batch) {
		s.unreserve(b.len(), b.mem)
		for b.len() > 0 && ctx.Err() == nil {
			k, sz := b.fit(s.batch-n, maxExportBytes-size, n == 0)
			if k == 0 {
				buf, n = s.export(ctx, buf, n)
				size = 0
				continue
			}
			part, rest := b, batch{}
			if k < b.len() {
				part, rest = b.split(k)
			}
			b = rest
			buf = append(buf, part)
			n += k
			size += sz
			if n >= s.batch || size >= maxExportBytes || rest.len() > 0 {
				buf, n = s.export(ctx, buf, n)
				size = 0
			}
		}
	}
	for {
		select {
		case b := <-s.queue:
			take(context.Background(), b)
		case <-t.C:
			if n > 0 {
				buf, n = s.export(context.Background(), buf, n)
				size = 0
			}
		case <-s.stop:
			ctx := *s.flushCtx.Load()
			for {
				select {
				case b := <-s.queue:
					take(ctx, b)
					continue
				default:
				}
				if n > 0 && ctx.Err() == nil {
					s.export(ctx, buf, n)
				}
				return
			}
		}
	}
}

// export sends the n spans of buf, logging a failure (rate-limited), and
// returns the emptied buffer.
func (s *sink) export(parent context.Context, buf []batch, n int) ([]batch, int) {
	ctx, cancel := context.WithTimeout(parent, s.timeout)
	defer cancel()
	start := time.Now()
	err := s.exp.export(ctx, buf)
	for i := range buf {
		if err != nil && buf[i].src != nil {
			buf[i].src.counts.ExportFailed.Add(uint64(buf[i].len()))
		}
		buf[i].blk.release()
	}
	if err != nil {
		s.failed.Add(uint64(n))
		if k, ok := s.failures.Allow(time.Now(), errorLogEvery); ok {
			s.log.Warn("could not export spans; they are dropped", zap.String("error", clipError(err)), zap.Int("spans", n), zap.Uint64("failedExportsSinceLastLog", k))
		}
	} else {
		s.exported.Add(uint64(n))
		if s.diag {
			s.log.Info("spans exported", zap.Int("spans", n), zap.Float64("ms", float64(time.Since(start).Microseconds())/1000))
		}
	}
	clear(buf)
	return buf[:0], 0
}

// maxErrorText bounds the error of an export failure's log line.
const maxErrorText = 1024

// clipError is err's text for a log line, at most maxErrorText bytes: all
// of it when it fits (an OTLP exporter's "exporter export timeout" wraps
// the cause, "connection refused", which the line must show). Otherwise
// the first of its errors and how many more: the SDK's stdout exporter
// (console, file) joins one error per span it could not write, the same
// one thousands of times.
func clipError(err error) string {
	if text := err.Error(); len(text) <= maxErrorText {
		return text
	}
	first, n := firstError(err)
	text, more := first.Error(), n-1
	suffix := ""
	if more > 0 {
		suffix = fmt.Sprintf(" (and %d more errors)", more)
	}
	return textclip.Clip(text, maxErrorText-len(suffix)) + suffix
}

// firstError is the first of the errors err joins and how many it
// joins, err itself and 1 for an error that joins none. errors.Join of a
// joined error and one more, as an exporter joins them span by span,
// nests: the count is of the errors at the end of every branch.
func firstError(err error) (first error, n int) {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return err, 1
	}
	for _, e := range j.Unwrap() {
		if e == nil {
			continue
		}
		f, k := firstError(e)
		if first == nil {
			first = f
		}
		n += k
	}
	if first == nil {
		return err, 1
	}
	return first, n
}

func (s *sink) shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.flushCtx.Store(&ctx)
		close(s.stop)
	})
	var late error
	select {
	case <-s.done:
	case <-ctx.Done():
		// An export still retrying (a collector that cannot be reached)
		// or a queue too long for the time left: what it held is lost.
		late = fmt.Errorf("still exporting at the deadline: the export in flight and %d spans queued are lost: %w", s.queued.Load(), ctx.Err())
	}
	err := s.exp.shutdown(ctx)
	if late != nil {
		err = errors.Join(late, err)
	}
	if s.closer != nil {
		if cerr := s.closer.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("exporter %s: %w", s.name, err)
	}
	return nil
}
