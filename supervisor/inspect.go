package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wattd/wattd/supervisor/listeners"
)

// Inspect turns on Node.js's inspector in every Node.js worker (wattd
// start --inspect, as wattpm's): each worker process listens on a port of
// its own above Port, and ServeInspector answers on Host:Port with the
// list of all of them, where Chrome's chrome://inspect (whose default
// target is localhost:9229) finds them. Standby workers get none.
type Inspect struct {
	Host string
	Port int
}

// InspectSpan is how many ports above Inspect.Port the workers take in
// turn: a replacement gets the next one (its predecessor may still hold
// its own while it exits, or during a rolling restart), and after
// InspectSpan processes the numbers start again.
const InspectSpan = 1000

// inspectPorts hands out the workers' inspector ports.
type inspectPorts struct {
	mu   sync.Mutex
	next int
}

// nextInspectPort is the inspector port of the next worker process.
func (rt *Runtime) nextInspectPort() int {
	rt.inspectPorts.mu.Lock()
	defer rt.inspectPorts.mu.Unlock()
	p := rt.inspect.Port + 1 + rt.inspectPorts.next%InspectSpan
	rt.inspectPorts.next++
	return p
}

// withNodeOption is env with opt added to its NODE_OPTIONS (the last one
// set, which is the one the process gets).
func withNodeOption(env []string, opt string) []string {
	cur := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "NODE_OPTIONS="); ok {
			cur = v
		}
	}
	if cur != "" {
		opt = cur + " " + opt
	}
	return append(slices.Clone(env), "NODE_OPTIONS="+opt)
}

// InspectorServer is the aggregate inspector list of ServeInspector.
type InspectorServer struct {
	srv *http.Server
}

// Close stops serving.
func (s *InspectorServer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

// inspectee is a running worker with an inspector: its title in the
// list and its inspector's port.
type inspectee struct {
	title string
	port  int
}

// inspectees lists the running workers with an inspector. It reads the
// slots' current processes only: Chrome's chrome://inspect asks for the
// list every few seconds, and a full status (Apps) reads /proc and the
// cgroups of every worker.
func (rt *Runtime) inspectees() []inspectee {
	var out []inspectee
	for _, a := range rt.appList() {
		for _, s := range a.slotList() {
			s.mu.Lock()
			w := s.cur
			s.mu.Unlock()
			if p, ok := w.(*proc); ok && p.inspectPort > 0 && !closed(p.Exited()) {
				out = append(out, inspectee{a.id + ":" + strconv.Itoa(s.index), p.inspectPort})
			}
		}
	}
	return out
}

// inspectTarget is one entry of an inspector's /json/list, as Chrome reads
// it; the fields wattd does not touch pass through unchanged.
type inspectTarget map[string]any

// ServeInspector serves, on the runtime's Inspect address, what a Node.js
// inspector serves for discovery (/json, /json/list, /json/version), for
// all the workers at once: each request asks every running worker's
// inspector for its entry and titles it "<application>:<worker>", as Watt
// does. The debugger then connects to each worker's own port.
func ServeInspector(rt *Runtime, log *zap.Logger) (*InspectorServer, error) {
	if rt.inspect == nil {
		return nil, errors.New("inspector: not asked for")
	}
	addr := net.JoinHostPort(rt.inspect.Host, strconv.Itoa(rt.inspect.Port))
	ln, err := net.Listen(listeners.Network(rt.inspect.Host), addr)
	if err != nil {
		return nil, fmt.Errorf("inspector list on %s: %w", addr, err)
	}
	client := &http.Client{Timeout: time.Second}
	fetch := func(ctx context.Context, port int, path string, into any) error {
		u := "http://" + net.JoinHostPort(rt.inspect.Host, strconv.Itoa(port)) + path
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", u, resp.Status)
		}
		return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(into)
	}
	workers := rt.inspectees
	list := func(w http.ResponseWriter, r *http.Request) {
		ws := workers()
		lists := make([][]inspectTarget, len(ws))
		var wg sync.WaitGroup
		for i, wk := range ws {
			wg.Go(func() {
				var l []inspectTarget
				if err := fetch(r.Context(), wk.port, "/json/list", &l); err != nil {
					log.Debug("inspector list: a worker's inspector did not answer", zap.String("worker", wk.title), zap.Error(err))
					return
				}
				for _, t := range l {
					t["title"] = wk.title
				}
				lists[i] = l
			})
		}
		wg.Wait()
		out := []inspectTarget{}
		for _, l := range lists {
			out = append(out, l...)
		}
		writeJSON(w, out)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /json", list)
	mux.HandleFunc("GET /json/list", list)
	mux.HandleFunc("GET /json/version", func(w http.ResponseWriter, r *http.Request) {
		for _, wk := range workers() {
			var v map[string]any
			if fetch(r.Context(), wk.port, "/json/version", &v) == nil {
				writeJSON(w, v)
				return
			}
		}
		http.Error(w, "no worker's inspector answers", http.StatusServiceUnavailable)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("inspector list stopped", zap.Error(err))
		}
	}()
	log.Info("inspector list: open chrome://inspect and add this address to its targets if it is not localhost:9229",
		zap.String("address", ln.Addr().String()))
	if os.Geteuid() == 0 {
		// A Node.js inspector asks for no credentials, on loopback too.
		log.Warn("the workers' inspectors run code as root for whoever reaches their ports, every local user included; use --inspect on a machine only you use, or run wattd as another user",
			zap.String("address", ln.Addr().String()))
	}
	return &InspectorServer{srv: srv}, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(v)
}
