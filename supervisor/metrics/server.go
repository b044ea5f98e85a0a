package metrics

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/wattd/wattd/supervisor"
	"github.com/wattd/wattd/supervisor/config"
	"github.com/wattd/wattd/supervisor/fdlimit"
	"github.com/wattd/wattd/supervisor/listeners"
)

// Runtime is what the server reads: the status snapshot for the
// collector, readiness for /ready.
type Runtime interface {
	Source
	Readiness(ctx context.Context, timeout time.Duration) []supervisor.WorkerReadiness
}

// checkTimeout bounds each custom readiness check a /ready request runs.
const checkTimeout = 5 * time.Second

// Server is a running metrics server.
type Server struct {
	srv  *http.Server
	addr net.Addr
	done chan struct{}
	otlp *otlpPusher // nil unless cfg.OTLP
	// metrics is the endpoint's handler without its credentials (see
	// Handler).
	metrics http.Handler
}

// Handler answers what the metrics endpoint answers, without asking for
// the credentials of metrics.auth: for the management API, whose socket
// only its owner opens.
func (s *Server) Handler() http.Handler { return s.metrics }

// Serve listens on cfg's hostname and port and serves the Prometheus
// endpoint and the probes (those not turned off) until Close. It fails
// only when the address cannot be bound.
func Serve(cfg config.Metrics, rt Runtime, log *zap.Logger) (*Server, error) {
	g, metrics, err := newHandler(cfg, rt, log)
	if err != nil {
		return nil, err
	}
	open := metrics
	if cfg.Auth != nil {
		metrics = basicAuth(*cfg.Auth, metrics)
	}
	routes := map[string]http.Handler{cfg.Endpoint: metrics}
	addProbes(routes, cfg.Readiness, cfg.Liveness, cfg.Auth, rt)
	s, err := serve("metrics", cfg.Hostname, cfg.Port, cfg.TLS, routes, log)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	s.metrics = open
	scheme := "http"
	if cfg.TLS != nil {
		scheme = "https"
	}
	log.Info("metrics server listening", zap.String("url", scheme+"://"+s.addr.String()+cfg.Endpoint))
	if cfg.OTLP != nil {
		s.otlp = startOTLP(*cfg.OTLP, cfg.AppLabel, g, log)
	}
	return s, nil
}

// NewHandler answers what the endpoint of a metrics server with cfg would
// answer (without its auth), and serves no port: the management API's
// metrics on a runtime that has no metrics server. It costs nothing until
// asked; the workers report only their usual figures, so the request
// durations and the other figures that cost them something
// (ipc.AppInfo.Metrics) are not among its series.
func NewHandler(cfg config.Metrics, rt Runtime, log *zap.Logger) (http.Handler, error) {
	_, h, err := newHandler(cfg, rt, log)
	return h, err
}

// newHandler builds the registry of the runtime's collector and the
// handler that answers it, in text or Watt's JSON, compressed as asked.
func newHandler(cfg config.Metrics, rt Runtime, log *zap.Logger) (gatherer, http.Handler, error) {
	// Not the pedantic registry, which checks every series against its
	// descriptor at each scrape: the tests gather the collector through
	// one, so the checks run where a mistake can be fixed.
	reg := prometheus.NewRegistry()
	var requestLabels []string
	for _, l := range cfg.RequestLabels {
		requestLabels = append(requestLabels, l.Name)
	}
	c := newCollector(rt, cfg.AppLabel, prometheus.Labels(cfg.Labels), requestLabels...)
	if err := reg.Register(c); err != nil {
		return gatherer{}, nil, fmt.Errorf("metrics: register the runtime collector: %w", err)
	}
	g := gatherer{reg: reg, c: c, merger: newAppMerger(log, cfg.AppLabel, prometheus.Labels(cfg.Labels), c.names)}
	return g, fastGzip(jsonOrText(g, promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:           zap.NewStdLog(log),
		ErrorHandling:      promhttp.ContinueOnError,
		DisableCompression: true, // fastGzip compresses
	}), log)), nil
}

// ServeProbes listens on cfg's hostname and port and serves the
// readiness and liveness probes only (Watt's "healthProbes" server),
// over plain HTTP, until Close. As on the metrics server, the probes ask
// for no credentials; with auth (the metrics'), only a caller that gives
// them is told what is not ready.
func ServeProbes(cfg config.ProbesServer, auth *config.BasicAuth, rt Runtime, log *zap.Logger) (*Server, error) {
	routes := map[string]http.Handler{}
	addProbes(routes, cfg.Readiness, cfg.Liveness, auth, rt)
	s, err := serve("health probes", cfg.Hostname, cfg.Port, nil, routes, log)
	if err != nil {
		return nil, fmt.Errorf("health probes: %w", err)
	}
	var paths []string
	for _, p := range []config.Probe{cfg.Readiness, cfg.Liveness} {
		if !p.Disabled {
			paths = append(paths, p.Endpoint)
		}
	}
	log.Info("health probes server listening", zap.String("address", s.addr.String()), zap.Strings("paths", paths))
	return s, nil
}

// addProbes adds the probes that are not turned off to routes.
func addProbes(routes map[string]http.Handler, readiness, liveness config.Probe, auth *config.BasicAuth, rt Runtime) {
	if !readiness.Disabled {
		routes[readiness.Endpoint] = probeHandler(readiness, auth, func(r *http.Request) verdict { return ready(r.Context(), rt) })
	}
	if !liveness.Disabled {
		routes[liveness.Endpoint] = probeHandler(liveness, auth, func(*http.Request) verdict { return live(rt) })
	}
}

// serverIdleTimeout closes a kept-alive connection that sends no request
// for that long. Without it a connection would stay open for as long as
// its client kept it, and the server is often on every interface: each
// costs wattd a descriptor and a goroutine. Scrapers that reuse their
// connection come back well within it (Prometheus: every 15 s to 1 min).
var serverIdleTimeout = 2 * time.Minute

// serverReadTimeout bounds reading a whole request, body included. None of
// the paths takes a body, but net/http reads what a request announced
// after the handler, and without a bound a client sending one byte now and
// then would hold its connection for ever.
var serverReadTimeout = 10 * time.Second

// serverWriteStall bounds each write of an answer rather than the whole
// of it: a large /metrics to a slow scraper that keeps reading goes on, a
// client that stops reading is cut.
var serverWriteStall = 30 * time.Second

// serverMaxConns bounds the connections open at once; the ones beyond are
// closed as soon as they are accepted. Scrapers and probes need a few.
var serverMaxConns = 256

// serve listens on hostname and port (over TLS when set) and answers
// the paths of routes until Close; any other path is 404, but for "/",
// which lists the routes (as Watt's server answers something there, and
// a check that the port answers may ask it). Paths are matched exactly,
// as Watt's server does: a path from watt.json is never a ServeMux
// pattern. Only GET and HEAD are answered.
func serve(name, hostname string, port int, tlsCfg *config.MetricsTLS, routes map[string]http.Handler, log *zap.Logger) (*Server, error) {
	index := "wattd " + name + " server; paths: " + strings.Join(slices.Sorted(maps.Keys(routes)), ", ") + "\n"
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route, ok := routes[r.URL.Path]
		if !ok && r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if !ok {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, index)
			return
		}
		route.ServeHTTP(w, r)
	})
	ln, err := net.Listen(listeners.Network(hostname), net.JoinHostPort(hostname, strconv.Itoa(port)))
	if err != nil {
		if why := listeners.InUse(hostname, port, err); why != err {
			return nil, why
		}
		return nil, fmt.Errorf("listen on %s port %d: %w", hostname, port, err)
	}
	// Before TLS, so that a refused connection costs no handshake.
	ln = &fdlimit.Listener{Listener: ln, Max: serverMaxConns, OnRefuse: refusals(name, log)}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, &tls.Config{Certificates: tlsCfg.Certificates, ClientAuth: tlsCfg.ClientAuth,
			MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}})
	}
	s := &Server{
		srv: &http.Server{Handler: stallWrites(h, serverWriteStall), ErrorLog: zap.NewStdLog(log),
			ReadHeaderTimeout: 10 * time.Second, ReadTimeout: serverReadTimeout,
			IdleTimeout: serverIdleTimeout, MaxHeaderBytes: 64 << 10,
			ConnState: newIdleEvictor(serverMaxConns).track},
		addr: ln.Addr(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("server stopped", zap.Error(err))
		}
	}()
	return s, nil
}

// idleEvictor closes the connection idle the longest (kept alive between
// requests) when a new one comes and the server is near its cap: a
// client holding connections open after one request each cannot keep
// scrapers and probes out, as the cap alone would let it. A connection in
// the middle of a request is bounded by the read timeout instead.
type idleEvictor struct {
	mu      sync.Mutex
	open    int
	evictAt int
	idle    map[net.Conn]time.Time
}

// newIdleEvictor starts evicting at three quarters of max connections.
func newIdleEvictor(maxConns int) *idleEvictor {
	return &idleEvictor{evictAt: max(1, maxConns*3/4), idle: map[net.Conn]time.Time{}}
}

// track is the server's ConnState hook.
func (e *idleEvictor) track(c net.Conn, st http.ConnState) {
	var victim net.Conn
	e.mu.Lock()
	switch st {
	case http.StateNew:
		e.open++
		if e.open > e.evictAt {
			var since time.Time
			for ic, at := range e.idle {
				if victim == nil || at.Before(since) {
					victim, since = ic, at
				}
			}
			delete(e.idle, victim)
		}
	case http.StateIdle:
		e.idle[c] = time.Now()
	case http.StateActive:
		delete(e.idle, c)
	case http.StateClosed, http.StateHijacked:
		delete(e.idle, c)
		e.open--
	}
	e.mu.Unlock()
	if victim != nil {
		victim.Close() // its StateClosed follows
	}
}

// refusals logs the connections closed at the limit, at most every 10 s
// with their running total.
func refusals(name string, log *zap.Logger) func(error) {
	var n atomic.Uint64
	var last atomic.Int64
	return func(reason error) {
		total := n.Add(1)
		now := time.Now().UnixNano()
		l := last.Load()
		if now-l < int64(10*time.Second) || !last.CompareAndSwap(l, now) {
			return
		}
		log.Warn(name+" server: refusing connections", zap.Error(reason),
			zap.Int("maxConnections", serverMaxConns), zap.Uint64("refusedTotal", total))
	}
}

// stallWrites gives each write of an answer stall to complete. The
// deadline is set at the start too, as the previous request on a kept-alive
// connection left its own behind.
func stallWrites(h http.Handler, stall time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &stallWriter{ResponseWriter: w, rc: http.NewResponseController(w), stall: stall}
		_ = sw.rc.SetWriteDeadline(time.Now().Add(stall))
		h.ServeHTTP(sw, r)
	})
}

type stallWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
}

func (w *stallWriter) Write(b []byte) (int, error) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.stall))
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the server's writer (Flush).
func (w *stallWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.addr }

// PushNow makes the OTLP push (when configured) push at once, without
// waiting; a push already asked for and not made yet counts.
func (s *Server) PushNow() {
	if s.otlp == nil {
		return
	}
	select {
	case s.otlp.kick <- struct{}{}:
	default:
	}
}

// Close stops the server, letting requests in flight finish for a
// moment, and the OTLP push after a last one.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	<-s.done
	if s.otlp != nil {
		s.otlp.Close()
	}
}

func basicAuth(a config.BasicAuth, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !authorized(a, r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="wattd metrics"`)
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func authorized(a config.BasicAuth, r *http.Request) bool {
	u, p, ok := r.BasicAuth()
	return ok && subtle.ConstantTimeCompare([]byte(u), []byte(a.Username)) == 1 &&
		subtle.ConstantTimeCompare([]byte(p), []byte(a.Password)) == 1
}
