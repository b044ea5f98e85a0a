package ipc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

// EnvStatsInterval is the period, in milliseconds, at which wattd wants a
// worker that reports stats to report them (2000 when unset).
const EnvStatsInterval = "WATTD_STATS_INTERVAL_MS"

// defaultStatsInterval is the period when EnvStatsInterval is unset, as
// for the Node.js preload.
const defaultStatsInterval = 2 * time.Second

// MaxAppMetrics bounds the text of a worker's own metrics in one report
// (UTF-8 bytes): wattd leaves out a longer one, and ReportStats does not
// send it.
const MaxAppMetrics = 256 << 10

// appMetricsRetry is how long ReportStats leaves out the app's metrics
// after they came out over MaxAppMetrics (doubling while they stay over,
// up to appMetricsRetryMax): rendering a large registry at every report
// would cost the worker for nothing.
const (
	appMetricsRetry    = time.Minute
	appMetricsRetryMax = 16 * time.Minute
)

// StatsOptions says what ReportStats sends beside the Go runtime's figures.
type StatsOptions struct {
	// AppMetrics returns the app's own metrics in the Prometheus text
	// format (a prometheus.Registry written with expfmt, say), added to
	// each report; wattd's metrics endpoint serves them with the worker's
	// applicationId and workerId labels. Nil: none. When its text has
	// go_goroutines already (a registry with the client library's Go
	// collector), the SDK's own Go series are left out, not doubled. A
	// text over MaxAppMetrics is left out of the reports, said once on
	// standard error, and AppMetrics is not called again for a minute
	// (then two, four, … up to 16 while it stays over).
	AppMetrics func() string
	// ActiveConns returns the client connections open now
	// (HTTPDrainer.Open); nil: 0.
	ActiveConns func() int
}

// ReportStats sends wattd a stats report now and then every
// WATTD_STATS_INTERVAL_MS, on the wall clock's multiples of it, until ctx ends or a report cannot be sent, and
// returns why it stopped. A report carries the Go runtime's figures as
// Prometheus series, with the names of the Prometheus client library's Go
// collector (go_goroutines, go_threads, go_memstats_*, go_gc_*,
// go_sched_gomaxprocs_threads, go_info), and what opts adds.
//
// Run it in a goroutine of its own for the life of the worker: wattd takes
// a worker that has reported and then stays silent for longer than its
// health checks allow for a stuck one (docs/worker-protocol.md, stats).
func (c *Control) ReportStats(ctx context.Context, opts StatsOptions) error {
	every := defaultStatsInterval
	if ms, err := strconv.Atoi(os.Getenv(EnvStatsInterval)); err == nil && ms > 0 {
		every = time.Duration(ms) * time.Millisecond
	}
	samples := goSamples()
	// After the first report, on the wall clock's multiples of the
	// period, when every other worker reports too: wattd reads them all
	// in one wake-up.
	next := func() time.Duration {
		now := time.Now()
		return now.Truncate(every).Add(every).Sub(now)
	}
	t := time.NewTimer(next())
	defer t.Stop()
	var skipUntil time.Time // the app's metrics are left out until then
	retry, warned := appMetricsRetry, false
	for {
		st := &Stats{}
		var app string
		if opts.AppMetrics != nil && !time.Now().Before(skipUntil) {
			app = opts.AppMetrics()
			if len(app) > MaxAppMetrics {
				if !warned {
					warned = true
					fmt.Fprintf(os.Stderr, "wattd ipc: the app's metrics are %d bytes, over the %d a stats report takes; left out of the reports, tried again in %s\n", len(app), MaxAppMetrics, retry)
				}
				app, skipUntil = "", time.Now().Add(retry)
				retry = min(2*retry, appMetricsRetryMax)
			} else {
				retry = appMetricsRetry
			}
		}
		if opts.ActiveConns != nil {
			st.ActiveConns = opts.ActiveConns()
		}
		if strings.Contains(app, "go_goroutines") {
			st.AppMetrics = app
		} else {
			st.AppMetrics = goMetricsText(samples) + app
		}
		err := c.Send(&Message{Type: TypeStats, Stats: st})
		if errors.Is(err, ErrFrameTooLarge) && app != "" {
			// Under MaxAppMetrics, but its JSON escapes made the frame
			// too large: the report goes without it.
			st.AppMetrics = goMetricsText(samples)
			err = c.Send(&Message{Type: TypeStats, Stats: st})
		}
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			t.Reset(next())
		}
	}
}

// goSeries are the Go runtime's figures a report carries: each read from
// runtime/metrics (no stop of the world), under the name the Prometheus
// client library's Go collector gives it.
var goSeries = []struct {
	name, help, typ, metric string
}{
	{"go_goroutines", "Number of goroutines that currently exist.", "gauge", "/sched/goroutines:goroutines"},
	{"go_memstats_alloc_bytes", "Number of bytes allocated in heap and currently in use.", "gauge", "/memory/classes/heap/objects:bytes"},
	{"go_memstats_alloc_bytes_total", "Total number of bytes allocated in heap until now, even if released already.", "counter", "/gc/heap/allocs:bytes"},
	{"go_memstats_heap_objects", "Number of currently allocated objects.", "gauge", "/gc/heap/objects:objects"},
	{"go_memstats_next_gc_bytes", "Number of heap bytes when next garbage collection will take place.", "gauge", "/gc/heap/goal:bytes"},
	{"go_memstats_stack_inuse_bytes", "Number of bytes obtained from system for stack allocator.", "gauge", "/memory/classes/heap/stacks:bytes"},
	{"go_memstats_sys_bytes", "Number of bytes obtained from system.", "gauge", "/memory/classes/total:bytes"},
	{"go_gc_cycles_total", "Count of all completed GC cycles.", "counter", "/gc/cycles/total:gc-cycles"},
	{"go_gc_gogc_percent", "Heap size target percentage configured by the user, otherwise 100.", "gauge", "/gc/gogc:percent"},
	{"go_gc_gomemlimit_bytes", "Go runtime memory limit configured by the user, otherwise math.MaxInt64.", "gauge", "/gc/gomemlimit:bytes"},
	{"go_sched_gomaxprocs_threads", "The current runtime.GOMAXPROCS setting.", "gauge", "/sched/gomaxprocs:threads"},
}

// goSamples makes the runtime/metrics samples of goSeries.
func goSamples() []metrics.Sample {
	s := make([]metrics.Sample, len(goSeries))
	for i, g := range goSeries {
		s[i].Name = g.metric
	}
	return s
}

// goMetricsText reads samples (goSamples) and writes them, go_threads and
// go_info in the Prometheus text format. A metric this Go does not have
// is left out.
func goMetricsText(samples []metrics.Sample) string {
	metrics.Read(samples)
	var b strings.Builder
	write := func(name, help, typ, value string) {
		b.WriteString("# HELP " + name + " " + help + "\n# TYPE " + name + " " + typ + "\n" + name + " " + value + "\n")
	}
	for i, s := range samples {
		g := goSeries[i]
		switch s.Value.Kind() {
		case metrics.KindUint64:
			write(g.name, g.help, g.typ, strconv.FormatUint(s.Value.Uint64(), 10))
		case metrics.KindFloat64:
			write(g.name, g.help, g.typ, strconv.FormatFloat(s.Value.Float64(), 'g', -1, 64))
		}
	}
	write("go_threads", "Number of OS threads created.", "gauge", strconv.Itoa(pprof.Lookup("threadcreate").Count()))
	b.WriteString("# HELP go_info Information about the Go environment.\n# TYPE go_info gauge\ngo_info{version=" + strconv.Quote(runtime.Version()) + "} 1\n")
	return b.String()
}
