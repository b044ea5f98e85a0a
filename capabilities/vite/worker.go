package vite

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/cgroups"
)

// StaticArg is argv[1] of wattd when it runs as a static file server worker.
// cmd/wattd dispatches it to StaticMain before any flag parsing.
const StaticArg = "__wattd-static"

// envStatsInterval overrides how often the worker reports stats, in ms.
const envStatsInterval = "WATTD_STATS_INTERVAL_MS"

// StaticMain is the whole static file server worker:
//
//	wattd __wattd-static [--spa] <dir>
//
// It serves dir (see Handler) on every socket wattd passed, tells wattd it is
// ready, reports stats, and on drain stops accepting, lets the requests in
// flight finish and says drained. It exits 0 on SIGTERM or SIGINT. It
// returns the process exit code: 2 for bad usage, 1 for other failures.
func StaticMain(args []string) int {
	// Started through /proc/self/exe (capabilities.WattdBinary), the process's name
	// would be "exe": ps and top show it as wattd, as they would have had
	// it been started from the file.
	_ = os.WriteFile("/proc/self/comm", []byte("wattd"), 0)
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	flags := flag.NewFlagSet("wattd "+StaticArg, flag.ContinueOnError)
	flags.SetOutput(os.Stderr)
	spa := flags.Bool("spa", false, "answer extension-less paths that match no file with index.html")
	flags.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: wattd %s [--spa] <dir>\n", StaticArg)
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if flags.NArg() != 1 {
		flags.Usage()
		return 2
	}
	dir := flags.Arg(0)

	// Catch the signals first: wattd may stop a worker that is still
	// starting, and that is still a clean exit.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	h, err := NewHandler(dir, *spa)
	if err != nil {
		logger.Error("cannot serve the build", "dir", dir, "err", err.Error())
		return 1
	}
	defer h.Close()
	listeners, err := ipc.Listeners()
	if err == nil && len(listeners) == 0 {
		err = errors.New("no sockets passed")
	}
	if err != nil {
		logger.Error("cannot take the sockets wattd passed; this program is started by wattd", "err", err.Error())
		return 1
	}
	ctl, err := ipc.Dial()
	if err != nil {
		logger.Error("control channel", "err", err.Error())
		return 1
	}
	defer ctl.Close()

	w := newWorker(h, slog.NewLogLogger(logger.Handler(), slog.LevelWarn))
	names := slices.Sorted(func(yield func(string) bool) {
		for name := range listeners {
			if !yield(name) {
				return
			}
		}
	})
	failed := make(chan error, len(names))
	for _, name := range names {
		srv := w.server()
		l := w.drain.Listener(listeners[name])
		go func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				failed <- fmt.Errorf("%s listener: %w", name, err)
			}
		}()
	}
	// A first report before ready: wattd judges a worker's health by its
	// reports once it has had one.
	w.sendStats(ctl)
	if err := ctl.Ready(names...); err != nil {
		logger.Error("control channel: ready", "err", err.Error())
		return 1
	}
	logger.Info("serving static files", "dir", dir, "spa", *spa, "listeners", strings.Join(names, ","))

	stopStats := make(chan struct{})
	defer close(stopStats)
	go w.reportStats(ctl, statsInterval(), stopStats)

	select {
	case <-ctl.Drain:
	case <-sigs:
		w.close()
		return 0
	case err := <-failed:
		logger.Error("serve", "err", err.Error())
		w.close()
		return 1
	}

	// Drain: no new connections, finish the requests in flight, answer
	// with Connection: close, and close idle keep-alive connections after
	// a quiet period (ipc.HTTPDrainer). wattd bounds how long this may
	// take and sends SIGTERM when it has waited enough.
	done := make(chan struct{})
	go func() {
		if err := w.drain.Drain(context.Background(), ctl.DrainTimeout(), w.servers...); err != nil {
			logger.Warn("drain", "err", err.Error())
		}
		close(done)
	}()
	select {
	case <-done:
	case <-sigs:
		w.close()
		return 0
	}
	if err := ctl.Drained(); err != nil {
		// Nobody to wait for: the channel is gone with wattd.
		logger.Warn("control channel: drained", "err", err.Error())
		return 0
	}
	// wattd sends SIGTERM after drained; wait for it rather than exit on
	// our own.
	<-sigs
	return 0
}

// worker is the static server's servers and counters.
type worker struct {
	handler  http.Handler
	errorLog *log.Logger
	servers  []*http.Server
	drain    ipc.HTTPDrainer
	conns    atomic.Int64  // open client connections
	requests atomic.Uint64 // requests received
}

func newWorker(h http.Handler, errorLog *log.Logger) *worker {
	w := &worker{errorLog: errorLog}
	w.handler = w.drain.Handler(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.requests.Add(1)
		h.ServeHTTP(rw, r)
	}))
	return w
}

// server returns a new http.Server for one listener, counting connections.
func (w *worker) server() *http.Server {
	srv := &http.Server{
		Handler:           w.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				w.conns.Add(1)
			case http.StateClosed, http.StateHijacked:
				w.conns.Add(-1)
			}
		},
		ErrorLog: w.errorLog,
	}
	w.servers = append(w.servers, srv)
	return srv
}

func (w *worker) close() {
	for _, s := range w.servers {
		_ = s.Close()
	}
}

// reportStats sends a stats message every interval until stop is closed,
// at the wall clock's multiples of the interval as the Node preload does
// (wattd then reads all its workers' reports in one wake-up). A Go server
// has no event loop, so elu stays 0.
func (w *worker) reportStats(ctl *ipc.Control, every time.Duration, stop <-chan struct{}) {
	t := time.NewTimer(untilAligned(time.Now(), every))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if w.sendStats(ctl) != nil {
			return
		}
		t.Reset(untilAligned(time.Now(), every))
	}
}

// untilAligned returns the time from now to the next multiple of every
// (since the Unix epoch); one that would come within a quarter of every
// is skipped.
func untilAligned(now time.Time, every time.Duration) time.Duration {
	d := every - time.Duration(now.UnixNano()%int64(every))
	if d < every/4 {
		d += every
	}
	return d
}

// sendStats sends one stats message.
func (w *worker) sendStats(ctl *ipc.Control) error {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st := &ipc.Stats{
		HeapUsed:     ms.HeapAlloc,
		HeapTotal:    ms.HeapSys,
		RSS:          cgroups.RSS(os.Getpid()),
		ActiveConns:  int(w.conns.Load()),
		RequestsDone: w.requests.Load(),
	}
	return ctl.Send(&ipc.Message{Type: ipc.TypeStats, Stats: st})
}

func statsInterval() time.Duration {
	if ms, err := strconv.Atoi(os.Getenv(envStatsInterval)); err == nil && ms > 0 {
		return time.Duration(ms) * time.Millisecond
	}
	return 2 * time.Second
}
