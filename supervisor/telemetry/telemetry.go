// Package telemetry owns wattd's tracing pipeline: workers send their
// finished spans on the control channel (ipc.TypeSpans); this package
// validates them, gives them the resource of the worker they came from and
// exports them with the OpenTelemetry Go SDK's exporters (OTLP over HTTP or
// gRPC, stdout, a file), as watt.json's "telemetry" key says.
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
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.uber.org/zap"

	"github.com/wattd/wattd/supervisor/config"
)

// Defaults of the pipeline.
const (
	// DefaultQueueSize bounds the spans waiting for one exporter: two
	// workers' worth of their own queue (4096 each) before any is dropped.
	DefaultQueueSize = 8192
	// DefaultBatchSize is the most spans one export carries (the SDK's
	// batch processor's default).
	DefaultBatchSize = 512
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

	countsMu sync.Mutex            // guards counts
	counts   map[string]*AppCounts // by application id
}

// AppCounts are one application's span counters since wattd started.
type AppCounts struct {
	Received  atomic.Uint64 // spans that arrived from its workers, valid or not
	Invalid   atomic.Uint64 // dropped: they broke the spans message's rules
	QueueFull atomic.Uint64 // dropped: an exporter's queue was full (counted once per span)
}

// Counts is a snapshot of AppCounts.
type Counts struct {
	Received, Invalid, QueueFull uint64
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
	for _, ec := range opts.Config.Exporters {
		exp, closer, err := newExporter(ec, opts.Stdout)
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
			queue:    make(chan sdktrace.ReadOnlySpan, opts.QueueSize),
			stop:     make(chan struct{}),
			done:     make(chan struct{}),
			batch:    opts.BatchSize,
			interval: opts.Interval,
			timeout:  opts.ExportTimeout,
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

// describe names an exporter for logs: its type and where it sends.
func describe(ec config.Exporter) string {
	switch ec.Type {
	case config.ExporterOTLP:
		target := ec.URL
		if target == "" {
			target = "endpoint from OTEL_EXPORTER_OTLP_* or the default"
		}
		return "otlp/" + ec.Protocol + " " + target
	case config.ExporterFile:
		return "file " + ec.Path
	default:
		return ec.Type
	}
}

// newExporter makes the SDK exporter of one configured exporter. The
// OTLP exporters read OTEL_EXPORTER_OTLP_* themselves; what watt.json
// says wins over those. closer, when not nil, is closed after the
// exporter's shutdown.
func newExporter(ec config.Exporter, stdout io.Writer) (sdktrace.SpanExporter, io.Closer, error) {
	ctx := context.Background()
	switch ec.Type {
	case config.ExporterOTLP:
		if ec.Protocol == config.ProtocolGRPC {
			var o []otlptracegrpc.Option
			if ec.URL != "" {
				o = append(o, otlptracegrpc.WithEndpointURL(ec.URL))
			}
			if len(ec.Headers) > 0 {
				o = append(o, otlptracegrpc.WithHeaders(ec.Headers))
			}
			e, err := otlptracegrpc.New(ctx, o...)
			return e, nil, err
		}
		var o []otlptracehttp.Option
		if ec.URL != "" {
			o = append(o, otlptracehttp.WithEndpointURL(ec.URL))
		}
		if len(ec.Headers) > 0 {
			o = append(o, otlptracehttp.WithHeaders(ec.Headers))
		}
		e, err := otlptracehttp.New(ctx, o...)
		return e, nil, err
	case config.ExporterConsole:
		e, err := stdouttrace.New(stdouttrace.WithWriter(stdout))
		return e, nil, err
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
		return e, f, nil
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
		var lim limiter
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			if n, ok := lim.allow(time.Now()); ok {
				log.Warn("OpenTelemetry SDK error", zap.Error(err), zap.Uint64("suppressed", n))
			}
		}))
	})
}

// limiter lets one event through every errorLogEvery and counts the
// others.
type limiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed uint64
}

// allow reports whether to log now, and how many events were held back
// since the last one logged.
func (l *limiter) allow(now time.Time) (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < errorLogEvery {
		l.suppressed++
		return 0, false
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return n, true
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
		out[app] = Counts{Received: c.Received.Load(), Invalid: c.Invalid.Load(), QueueFull: c.QueueFull.Load()}
	}
	return out
}

// enqueue hands spans to every exporter without waiting; it returns how
// many spans found at least one exporter's queue full.
func (p *Pipeline) enqueue(spans []sdktrace.ReadOnlySpan) (full int) {
	if p.closed.Load() {
		return len(spans)
	}
	for _, sp := range spans {
		lost := false
		for _, s := range p.sinks {
			select {
			case s.queue <- sp:
			default:
				lost = true
			}
		}
		if lost {
			full++
		}
	}
	return full
}

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
	exp      sdktrace.SpanExporter
	closer   io.Closer
	queue    chan sdktrace.ReadOnlySpan
	batch    int
	interval time.Duration
	timeout  time.Duration

	stop     chan struct{} // closed by shutdown
	stopOnce sync.Once
	flushCtx atomic.Pointer[context.Context] // shutdown's context, set before stop closes
	done     chan struct{}                   // closed when run has returned

	failures limiter
	exported atomic.Uint64
	failed   atomic.Uint64
}

// run batches the queue into exports until shutdown, then exports what
// is left within shutdown's deadline.
func (s *sink) run() {
	defer close(s.done)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	buf := make([]sdktrace.ReadOnlySpan, 0, s.batch)
	for {
		select {
		case sp := <-s.queue:
			buf = append(buf, sp)
			if len(buf) >= s.batch {
				buf = s.export(context.Background(), buf)
			}
		case <-t.C:
			if len(buf) > 0 {
				buf = s.export(context.Background(), buf)
			}
		case <-s.stop:
			ctx := *s.flushCtx.Load()
			for {
				select {
				case sp := <-s.queue:
					buf = append(buf, sp)
					if len(buf) < s.batch {
						continue
					}
				default:
				}
				if len(buf) == 0 || ctx.Err() != nil {
					return
				}
				buf = s.export(ctx, buf)
			}
		}
	}
}

// export sends one batch, logging a failure (rate-limited), and returns
// the emptied buffer.
func (s *sink) export(parent context.Context, buf []sdktrace.ReadOnlySpan) []sdktrace.ReadOnlySpan {
	ctx, cancel := context.WithTimeout(parent, s.timeout)
	defer cancel()
	if err := s.exp.ExportSpans(ctx, buf); err != nil {
		s.failed.Add(uint64(len(buf)))
		if n, ok := s.failures.allow(time.Now()); ok {
			s.log.Warn("could not export spans; they are dropped", zap.Error(err), zap.Int("spans", len(buf)), zap.Uint64("failedExportsSinceLastLog", n))
		}
	} else {
		s.exported.Add(uint64(len(buf)))
	}
	clear(buf)
	return buf[:0]
}

func (s *sink) shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.flushCtx.Store(&ctx)
		close(s.stop)
	})
	select {
	case <-s.done:
	case <-ctx.Done():
	}
	err := s.exp.Shutdown(ctx)
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
