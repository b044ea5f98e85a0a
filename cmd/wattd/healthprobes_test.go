package main_test

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHealthProbesServer runs Watt's "healthProbes" on a port other than
// the metrics server's: the probes answer there, and only there, with
// their configured answers, and the metrics stay on the metrics port.
func TestHealthProbesServer(t *testing.T) {
	integration(t)
	port, mport, pport := freePort(t), freePort(t), freePort(t)
	dir := probesProject(t,
		map[string]any{"hostname": "127.0.0.1", "port": mport},
		map[string]any{"hostname": "127.0.0.1", "port": pport, "readiness": map[string]any{"endpoint": "/readyz", "success": map[string]any{"statusCode": 204}}})
	d := startWattd(t, dir, port, startOpts{})
	d.waitReady("web", 20*time.Second)
	probes, metrics := fmt.Sprintf("http://127.0.0.1:%d", pport), fmt.Sprintf("http://127.0.0.1:%d", mport)
	waitFor(t, 10*time.Second, "the readiness probe to pass", func() bool {
		code, _, err := get(fresh, probes+"/readyz")
		return err == nil && code == http.StatusNoContent
	})
	if code, body, err := get(fresh, probes+"/status"); err != nil || code != http.StatusOK || strings.TrimSpace(body) != "OK" {
		t.Errorf("probes server /status: %d %q %v, want 200 OK", code, body, err)
	}
	for _, u := range []string{probes + "/metrics", probes + "/ready", metrics + "/readyz", metrics + "/status"} {
		if code, _, err := get(fresh, u); err != nil || code != http.StatusNotFound {
			t.Errorf("%s: %d %v, want 404", u, code, err)
		}
	}
	if fams, err := scrape(metrics+"/metrics", "", ""); err != nil || fams["wattd_workers"] == nil {
		t.Errorf("metrics server /metrics: %v, wattd_workers %v", err, fams["wattd_workers"])
	}
	if !strings.Contains(d.out.String(), "health probes server listening") {
		t.Errorf("no line says where the probes are served:\n%s", d.out.String())
	}
	d.signal(syscall.SIGTERM)
	if code := d.wait(20 * time.Second); code != 0 {
		t.Fatalf("wattd exited %d", code)
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", pport), time.Second); err == nil {
		c.Close()
		t.Errorf("the probes port still accepts connections after wattd exited")
	}
}

// TestHealthProbesWithoutMetrics: a Watt project that wants probes for
// its orchestrator and no metrics gets a server with the probes only.
// With "healthProbes": false beside the metrics, the metrics server
// answers no probe.
func TestHealthProbesWithoutMetrics(t *testing.T) {
	integration(t)
	port, pport := freePort(t), freePort(t)
	dir := probesProject(t, nil, map[string]any{"hostname": "127.0.0.1", "port": pport})
	d := startWattd(t, dir, port, startOpts{})
	d.waitReady("web", 20*time.Second)
	probes := fmt.Sprintf("http://127.0.0.1:%d", pport)
	waitFor(t, 10*time.Second, "the readiness probe to pass", func() bool {
		code, _, err := get(fresh, probes+"/ready")
		return err == nil && code == http.StatusOK
	})
	if code, _, err := get(fresh, probes+"/metrics"); err != nil || code != http.StatusNotFound {
		t.Errorf("/metrics without metrics: %d %v, want 404", code, err)
	}
	d.signal(syscall.SIGTERM)
	if code := d.wait(20 * time.Second); code != 0 {
		t.Fatalf("wattd exited %d", code)
	}

	mport := freePort(t)
	dir = probesProject(t, map[string]any{"hostname": "127.0.0.1", "port": mport}, false)
	d = startWattd(t, dir, port, startOpts{})
	d.waitReady("web", 20*time.Second)
	metrics := fmt.Sprintf("http://127.0.0.1:%d", mport)
	if _, err := scrape(metrics+"/metrics", "", ""); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/ready", "/status"} {
		if code, _, err := get(fresh, metrics+p); err != nil || code != http.StatusNotFound {
			t.Errorf("%s with healthProbes false: %d %v, want 404", p, code, err)
		}
	}
}

// TestHealthProbesSharedKeepsAuth: "healthProbes" at the metrics
// server's own address moves the probes' paths there and keeps the
// metrics' credentials (Watt's shared server drops them, serving
// /metrics to anyone).
func TestHealthProbesSharedKeepsAuth(t *testing.T) {
	integration(t)
	port, mport := freePort(t), freePort(t)
	dir := probesProject(t,
		map[string]any{"hostname": "127.0.0.1", "port": mport, "auth": map[string]any{"username": "prom", "password": "s3cret"}},
		map[string]any{"hostname": "127.0.0.1", "port": mport, "liveness": map[string]any{"endpoint": "/livez"}})
	d := startWattd(t, dir, port, startOpts{})
	d.waitReady("web", 20*time.Second)
	base := fmt.Sprintf("http://127.0.0.1:%d", mport)
	waitFor(t, 10*time.Second, "the readiness probe to pass without credentials", func() bool {
		code, _, err := get(fresh, base+"/ready")
		return err == nil && code == http.StatusOK
	})
	if code, _, err := get(fresh, base+"/livez"); err != nil || code != http.StatusOK {
		t.Errorf("/livez: %d %v, want 200", code, err)
	}
	if code, _, err := get(fresh, base+"/status"); err != nil || code != http.StatusNotFound {
		t.Errorf("/status with the liveness probe moved by healthProbes: %d %v, want 404", code, err)
	}
	if code, _, err := get(fresh, base+"/metrics"); err != nil || code != http.StatusUnauthorized {
		t.Errorf("/metrics without credentials: %d %v, want 401", code, err)
	}
	if _, err := scrape(base+"/metrics", "prom", "s3cret"); err != nil {
		t.Errorf("/metrics with the credentials: %v", err)
	}
	if strings.Contains(d.out.String(), "health probes server listening") {
		t.Errorf("a probes server of its own started for the metrics server's address:\n%s", d.out.String())
	}
}

// probesProject is a watt.json of the plain fixture as "web" on loopback
// at the test's port, with metrics (nil: no "metrics" key) and
// healthProbes as those keys' values.
func probesProject(t *testing.T, metrics, healthProbes any) string {
	t.Helper()
	cfg := map[string]any{
		"entrypoint":   "web",
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"healthProbes": healthProbes,
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/plain")}},
	}
	if metrics != nil {
		cfg["metrics"] = metrics
	}
	return project(t, cfg)
}
