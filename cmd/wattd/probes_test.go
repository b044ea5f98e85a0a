package main_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestReadyProbeTakesTheAppsAnswer: an application written for Watt whose
// custom readiness check returns {status: false, statusCode, body} makes
// /ready answer with that code and body, as Watt's probe does; while the
// check passes, /ready gives the configured success answer.
func TestReadyProbeTakesTheAppsAnswer(t *testing.T) {
	integration(t)
	port, mport := freePort(t), freePort(t)
	dir := metricsProject(t, map[string]any{"hostname": "127.0.0.1", "port": mport,
		"readiness": map[string]any{"success": map[string]any{"statusCode": 200, "body": "all ready"}}}, map[string]any{"id": "web", "path": fixture("apps/globals")})
	d := startWattd(t, dir, port, startOpts{})
	ready := fmt.Sprintf("http://127.0.0.1:%d/ready", mport)
	waitFor(t, 30*time.Second, "/ready to pass with the configured body", func() bool {
		code, body, err := get(fresh, ready)
		return err == nil && code == http.StatusOK && strings.TrimSpace(body) == "all ready"
	})
	if code, body, err := get(fresh, d.url("/unready")); err != nil || code != http.StatusOK {
		t.Fatalf("GET /unready: %d %q %v", code, body, err)
	}
	code, body, err := get(fresh, ready)
	if err != nil || code != http.StatusServiceUnavailable || strings.TrimSpace(body) != "warming up" {
		t.Fatalf("/ready with the app's check failing: %d %q %v, want 503 %q", code, body, err, "warming up")
	}
	// A code that is no HTTP status (net/http would panic on 42) gives the
	// probe's own failure code, with the app's body.
	if code, body, err := get(fresh, d.url("/unready?code=42")); err != nil || code != http.StatusOK {
		t.Fatalf("GET /unready?code=42: %d %q %v", code, body, err)
	}
	code, body, err = get(fresh, ready)
	if err != nil || code != http.StatusInternalServerError || strings.TrimSpace(body) != "warming up" {
		t.Fatalf("/ready with the app's check asking for status 42: %d %q %v, want 500 %q", code, body, err, "warming up")
	}
}
