package metrics

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/wattd/wattd/supervisor"
	"github.com/wattd/wattd/supervisor/config"
)

// probed is a runtime whose readiness is given.
type probed struct {
	snapshot
	readiness []supervisor.WorkerReadiness
}

func (p probed) Readiness(context.Context, time.Duration) []supervisor.WorkerReadiness {
	return p.readiness
}

func serveTest(t *testing.T, cfg config.Metrics, rt Runtime) string {
	t.Helper()
	cfg.Hostname, cfg.Port = "127.0.0.1", 0
	if cfg.Endpoint == "" {
		cfg.Endpoint = config.DefaultMetricsEndpoint
	}
	if cfg.AppLabel == "" {
		cfg.AppLabel = config.DefaultAppLabel
	}
	if cfg.Readiness.Endpoint == "" {
		cfg.Readiness.Endpoint = config.DefaultReadinessPath
	}
	if cfg.Liveness.Endpoint == "" {
		cfg.Liveness.Endpoint = config.DefaultLivenessPath
	}
	s, err := Serve(cfg, rt, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return "http://" + s.Addr().String()
}

func call(t *testing.T, url string, auth *config.BasicAuth) (int, string) {
	t.Helper()
	resp, b := fetch(t, url, func(req *http.Request) {
		if auth != nil {
			req.SetBasicAuth(auth.Username, auth.Password)
		}
	})
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// fetch GETs url, with set applied to the request first, and returns the
// response (its body read and closed) and the body.
func fetch(t *testing.T, url string, set func(*http.Request)) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	set(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func oneApp(state string, readiness ...supervisor.WorkerReadiness) probed {
	return probed{
		snapshot:  snapshot{apps: []supervisor.AppStatus{{ID: "api", Workers: []supervisor.WorkerStatus{{Index: 0, PID: 1, State: state}}}}},
		readiness: readiness,
	}
}

func TestProbes(t *testing.T) {
	readyRT := oneApp("ready", supervisor.WorkerReadiness{App: "api", Ready: true})
	unready := oneApp("starting", supervisor.WorkerReadiness{App: "api", Reason: "worker starting"})
	custom := config.Metrics{
		Readiness: config.Probe{Endpoint: "/healthz/ready", Success: config.ProbeAnswer{StatusCode: 204}, Fail: config.ProbeAnswer{StatusCode: 503, Body: "not yet"}},
		Liveness:  config.Probe{Disabled: true},
	}
	creds := &config.BasicAuth{Username: "u", Password: "p"}
	tests := []struct {
		name string
		cfg  config.Metrics
		rt   Runtime
		path string
		auth *config.BasicAuth
		code int
		body string
	}{
		{name: "ready: Watt's defaults", rt: readyRT, path: "/ready", code: 200, body: "OK"},
		{name: "live", rt: readyRT, path: "/status", code: 200, body: "OK"},
		{name: "not ready says why", rt: unready, path: "/ready", code: 500,
			body: `application "api" has no ready worker (worker 0: worker starting)`},
		{name: "not live", rt: unready, path: "/status", code: 500, body: `application "api" has no ready worker`},
		{name: "custom path and success code", cfg: custom, rt: readyRT, path: "/healthz/ready", code: 204},
		{name: "custom failure", cfg: custom, rt: unready, path: "/healthz/ready", code: 503, body: "not yet"},
		{name: "default path gone when moved", cfg: custom, rt: readyRT, path: "/ready", code: 404, body: "404 page not found"},
		{name: "liveness off", cfg: custom, rt: readyRT, path: "/status", code: 404, body: "404 page not found"},
		{name: "paths are exact", rt: readyRT, path: "/ready/", code: 404, body: "404 page not found"},
		{name: "the app's check answer comes first", cfg: custom, path: "/healthz/ready", code: 299, body: "db ok",
			rt: oneApp("ready", supervisor.WorkerReadiness{App: "api", Ready: true, Checked: true, StatusCode: 299, Body: "db ok"})},
		{name: "the app's failing check body", cfg: custom, path: "/healthz/ready", code: 503, body: "db down",
			rt: oneApp("ready", supervisor.WorkerReadiness{App: "api", Checked: true, Body: "db down", Reason: "custom readiness check failed"})},
		// As Watt: a ready worker whose check fails makes its application
		// unready, though another worker passes; a worker starting does
		// not while another serves.
		{name: "one worker's failing check", path: "/ready", code: 500,
			body: `application "api" has a worker whose readiness check fails (worker 1: custom readiness check failed)`,
			rt: oneApp("ready", supervisor.WorkerReadiness{App: "api", Ready: true, Checked: true},
				supervisor.WorkerReadiness{App: "api", Worker: 1, Checked: true, CheckFailed: true, Reason: "custom readiness check failed"})},
		{name: "one worker starting", path: "/ready", code: 200, body: "OK",
			rt: oneApp("ready", supervisor.WorkerReadiness{App: "api", Ready: true, Checked: true},
				supervisor.WorkerReadiness{App: "api", Worker: 1, Reason: "worker starting"})},
		{name: "a failing check is not a liveness failure", path: "/status", code: 200, body: "OK",
			rt: oneApp("ready", supervisor.WorkerReadiness{App: "api", Ready: true},
				supervisor.WorkerReadiness{App: "api", Worker: 1, Checked: true, CheckFailed: true, Reason: "custom readiness check failed"})},
		{name: "probes need no credentials", cfg: config.Metrics{Auth: creds}, rt: readyRT, path: "/ready", code: 200, body: "OK"},
		{name: "metrics do", cfg: config.Metrics{Auth: creds}, rt: readyRT, path: "/metrics", code: 401, body: "Unauthorized"},
		{name: "no detail without credentials", cfg: config.Metrics{Auth: creds}, rt: unready, path: "/ready", code: 500, body: "ERR"},
		{name: "detail with them", cfg: config.Metrics{Auth: creds}, rt: unready, path: "/status", auth: creds, code: 500,
			body: `application "api" has no ready worker`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := serveTest(t, tt.cfg, tt.rt)
			code, body := call(t, base+tt.path, tt.auth)
			if code != tt.code || body != tt.body {
				t.Errorf("GET %s: %d %q, want %d %q", tt.path, code, body, tt.code, tt.body)
			}
		})
	}
}

func TestProbesStopping(t *testing.T) {
	rt := stopping{oneApp("ready", supervisor.WorkerReadiness{App: "api", Ready: true})}
	base := serveTest(t, config.Metrics{Liveness: config.Probe{Fail: config.ProbeAnswer{StatusCode: 599}}}, rt)
	if code, body := call(t, base+"/status", nil); code != 599 || body != "runtime is stopping" {
		t.Errorf("/status while stopping: %d %q", code, body)
	}
}

type stopping struct{ probed }

func (stopping) Status() supervisor.RuntimeStatus { return supervisor.RuntimeStatus{State: "stopping"} }

// counted counts the status snapshots read from it.
type counted struct {
	probed
	apps *atomic.Int64
}

func (c counted) Apps() []supervisor.AppStatus {
	c.apps.Add(1)
	return c.probed.Apps()
}

// TestScrapeReadsStatusOnce: the runtime's status costs a few files per
// worker to read, so one scrape reads it once, span counters included.
func TestScrapeReadsStatusOnce(t *testing.T) {
	p := oneApp("ready")
	p.apps[0].Spans = &supervisor.SpanCounts{Received: 4}
	rt := counted{probed: p, apps: &atomic.Int64{}}
	url := serveTest(t, config.Metrics{}, rt)
	for i := 1; i <= 3; i++ {
		code, body := call(t, url+config.DefaultMetricsEndpoint, nil)
		if code != http.StatusOK || !strings.Contains(body, "wattd_spans_received_total") {
			t.Fatalf("scrape %d: %d\n%s", i, code, body)
		}
		if n := rt.apps.Load(); n != int64(i) {
			t.Fatalf("after %d scrapes the status was read %d times", i, n)
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	for h, want := range map[string]bool{
		"": false, "gzip": true, "GZIP": true, "deflate, gzip;q=0.5": true, "gzip;q=1.0": true,
		"gzip;q=0": false, "gzip; q=0.000": false, "identity, x-gzip": false, "br;q=1, gzip;level=1;q=0": false,
		"zstd, gzip ; q=0.1": true,
	} {
		if got := acceptsGzip([]string{h}); got != want {
			t.Errorf("Accept-Encoding %q: %v, want %v", h, got, want)
		}
	}
}

// TestScrapeGzip: a client that accepts gzip gets the same series
// compressed; one that does not, or refuses it with q=0, gets the text.
func TestScrapeGzip(t *testing.T) {
	url := serveTest(t, config.Metrics{}, oneApp("ready")) + config.DefaultMetricsEndpoint
	// Set by hand, the Transport neither adds gzip nor decompresses.
	get := func(accept string) (*http.Response, []byte) {
		t.Helper()
		return fetch(t, url, func(req *http.Request) { req.Header.Set("Accept-Encoding", accept) })
	}
	plain, text := get("identity")
	if plain.Header.Get("Content-Encoding") != "" || !strings.Contains(string(text), `wattd_worker_up{applicationId="api",workerId="0"} 1`) {
		t.Fatalf("without gzip: %v\n%s", plain.Header, text)
	}
	refused, _ := get("gzip;q=0")
	if refused.Header.Get("Content-Encoding") != "" {
		t.Fatalf("gzip;q=0 answered with %q", refused.Header.Get("Content-Encoding"))
	}
	resp, body := get("gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
		t.Fatalf("with gzip: %v", resp.Header)
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unzipped), `wattd_worker_up{applicationId="api",workerId="0"} 1`) || len(body) >= len(unzipped) {
		t.Fatalf("gzip body of %d bytes unzips to %d:\n%s", len(body), len(unzipped), unzipped)
	}
}

// TestProbeBodiesAreExact: a probe sends its body as it is, as Watt does:
// "OK", not "OK\n", and a configured body byte for byte.
func TestProbeBodiesAreExact(t *testing.T) {
	base := serveTest(t, config.Metrics{Liveness: config.Probe{Success: config.ProbeAnswer{Body: "alive"}}},
		oneApp("ready", supervisor.WorkerReadiness{App: "api", Ready: true}))
	for path, want := range map[string]string{"/ready": "OK", "/status": "alive"} {
		_, b := fetch(t, base+path, func(*http.Request) {})
		if string(b) != want {
			t.Errorf("GET %s: body %q, want %q", path, b, want)
		}
	}
}

// TestIndexAndMethods: "/" lists the server's paths, as Watt's server
// answers something there; only GET and HEAD are answered.
func TestIndexAndMethods(t *testing.T) {
	base := serveTest(t, config.Metrics{}, oneApp("ready", supervisor.WorkerReadiness{App: "api", Ready: true}))
	if code, body := call(t, base+"/", nil); code != 200 || body != "wattd metrics server; paths: /metrics, /ready, /status" {
		t.Errorf("GET /: %d %q", code, body)
	}
	resp, _ := fetch(t, base+"/metrics", func(r *http.Request) { r.Method = http.MethodPost })
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /metrics: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if code, _ := call(t, base+"/nowhere", nil); code != 404 {
		t.Errorf("GET /nowhere: %d", code)
	}
	// The probes' own server (healthProbes) names itself so.
	ps, err := ServeProbes(config.ProbesServer{Hostname: "127.0.0.1",
		Readiness: config.Probe{Endpoint: config.DefaultReadinessPath}, Liveness: config.Probe{Disabled: true}},
		nil, oneApp("ready", supervisor.WorkerReadiness{App: "api", Ready: true}), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	if code, body := call(t, "http://"+ps.Addr().String()+"/", nil); code != 200 || body != "wattd health probes server; paths: /ready" {
		t.Errorf("GET / of the probes server: %d %q", code, body)
	}
}
