package metrics

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/wattd/wattd/supervisor"
	"github.com/wattd/wattd/supervisor/config"
)

// Runtime is what the server reads: the status snapshot for the
// collector, readiness for /ready.
type Runtime interface {
	Source
	Readiness(ctx context.Context, timeout time.Duration) []supervisor.WorkerReadiness
}

// Paths of the probes, Watt's defaults.
const (
	ReadyPath  = "/ready"
	StatusPath = "/status"
)

// checkTimeout bounds each custom readiness check a /ready request runs.
const checkTimeout = 5 * time.Second

// Server is a running metrics server.
type Server struct {
	srv  *http.Server
	addr net.Addr
	done chan struct{}
}

// Serve listens on cfg's hostname and port and serves the Prometheus
// endpoint and the probes until Close. It fails only when the address
// cannot be bound.
func Serve(cfg config.Metrics, rt Runtime, log *zap.Logger) (*Server, error) {
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(newCollector(rt, prometheus.Labels(cfg.Labels))); err != nil {
		return nil, fmt.Errorf("metrics: register the runtime collector: %w", err)
	}
	if err := reg.Register(newSpansCollector(rt, prometheus.Labels(cfg.Labels))); err != nil {
		return nil, fmt.Errorf("metrics: register the spans collector: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(cfg.Endpoint, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      zap.NewStdLog(log),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc(ReadyPath, func(w http.ResponseWriter, r *http.Request) {
		ok, body := ready(r.Context(), rt)
		probeAnswer(w, ok, body)
	})
	mux.HandleFunc(StatusPath, func(w http.ResponseWriter, _ *http.Request) {
		ok, body := live(rt)
		probeAnswer(w, ok, body)
	})
	var h http.Handler = mux
	if cfg.Auth != nil {
		h = basicAuth(*cfg.Auth, mux)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Hostname, strconv.Itoa(cfg.Port)))
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s port %d: %w", cfg.Hostname, cfg.Port, err)
	}
	s := &Server{
		srv:  &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: zap.NewStdLog(log)},
		addr: ln.Addr(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", zap.Error(err))
		}
	}()
	log.Info("metrics server listening", zap.String("url", "http://"+s.addr.String()+cfg.Endpoint))
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.addr }

// Close stops the server, letting requests in flight finish for a moment.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	<-s.done
}

// ready is Watt's readiness: every application has a ready worker (a
// worker whose custom readiness check, if the app set one, passes).
func ready(ctx context.Context, rt Runtime) (bool, string) {
	readyApps := map[string]bool{}
	reasons := map[string][]string{}
	for _, r := range rt.Readiness(ctx, checkTimeout) {
		if r.Ready {
			readyApps[r.App] = true
		} else {
			reasons[r.App] = append(reasons[r.App], fmt.Sprintf("worker %d: %s", r.Worker, r.Reason))
		}
	}
	var missing []string
	for _, a := range rt.Apps() {
		if !readyApps[a.ID] {
			missing = append(missing, fmt.Sprintf("application %q has no ready worker (%s)", a.ID, strings.Join(reasons[a.ID], "; ")))
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return false, strings.Join(missing, "\n")
	}
	return true, "OK"
}

// live is the liveness probe: the runtime runs and every application has
// a ready worker. Watt also runs the custom health checks here; wattd
// already runs them itself and replaces a worker that fails them.
func live(rt Runtime) (bool, string) {
	if st := rt.Status(); st.State == "stopping" {
		return false, "runtime is stopping"
	}
	var missing []string
	for _, a := range rt.Apps() {
		ok := false
		for _, w := range a.Workers {
			ok = ok || w.State == supervisor.StateReady.String()
		}
		if !ok {
			missing = append(missing, fmt.Sprintf("application %q has no ready worker", a.ID))
		}
	}
	if len(missing) > 0 {
		return false, strings.Join(missing, "\n")
	}
	return true, "OK"
}

// probeAnswer writes a probe's answer with Watt's default codes: 200, or
// 500 on failure.
func probeAnswer(w http.ResponseWriter, ok bool, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if ok {
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusInternalServerError)
	}
	fmt.Fprintln(w, body)
}

func basicAuth(a config.BasicAuth, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(a.Username)) != 1 ||
			subtle.ConstantTimeCompare([]byte(p), []byte(a.Password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="wattd metrics"`)
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
