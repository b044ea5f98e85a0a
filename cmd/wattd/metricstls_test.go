package main_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor/testtls"
)

// TestMetricsHTTPS runs the metrics server with Watt's metrics.https, the
// key and certificate in files beside watt.json: the endpoint and the
// probes answer over HTTPS to a client that trusts the certificate, a
// plain HTTP request gets no metrics, and with requestCert a client
// without a certificate is refused.
func TestMetricsHTTPS(t *testing.T) {
	integration(t)
	certPEM, keyPEM := testtls.SelfSigned(t)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("the test certificate does not parse")
	}
	trusting := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	for _, requestCert := range []bool{false, true} {
		t.Run(fmt.Sprintf("requestCert=%v", requestCert), func(t *testing.T) {
			port, mport := freePort(t), freePort(t)
			dir := metricsProject(t, map[string]any{"hostname": "127.0.0.1", "port": mport,
				"https": map[string]any{"key": map[string]any{"path": "tls/m.key"}, "cert": map[string]any{"path": "tls/m.crt"}, "requestCert": requestCert}}, map[string]any{"id": "web", "path": fixture("apps/plain")})
			if err := os.MkdirAll(filepath.Join(dir, "tls"), 0o700); err != nil {
				t.Fatal(err)
			}
			for name, b := range map[string][]byte{
				"m.key": keyPEM,
				"m.crt": certPEM,
			} {
				if err := os.WriteFile(filepath.Join(dir, "tls", name), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			d := startWattd(t, dir, port, startOpts{})
			d.waitReady("web", 30*time.Second)
			base := fmt.Sprintf("127.0.0.1:%d", mport)
			if requestCert {
				// The client has no certificate: the handshake fails with
				// TLS's "certificate required".
				_, err := trusting.Get("https://" + base + "/metrics")
				if err == nil || !strings.Contains(err.Error(), "certificate required") {
					t.Errorf("GET without a client certificate: %v, want the handshake refused", err)
				}
				return
			}
			waitFor(t, 20*time.Second, "/ready over HTTPS", func() bool {
				code, _, err := get(trusting, "https://"+base+"/ready")
				return err == nil && code == http.StatusOK
			})
			code, body, err := get(trusting, "https://"+base+"/metrics")
			if err != nil || code != http.StatusOK || !strings.Contains(body, "wattd_worker_up") {
				t.Errorf("GET https /metrics: %d %v %.200s", code, err, body)
			}
			// Plain HTTP gets Go's 400 "Client sent an HTTP request to an
			// HTTPS server", which says what to fix, and no metrics.
			resp, err := fresh.Get("http://" + base + "/metrics")
			if err != nil {
				t.Fatalf("plain HTTP: %v", err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "HTTPS") {
				t.Errorf("plain HTTP: %d %q, want 400 saying the server speaks HTTPS", resp.StatusCode, b)
			}
		})
	}
}
