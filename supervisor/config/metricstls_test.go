package config

import (
	"crypto/tls"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wattd/wattd/supervisor/testtls"
)

func TestMetricsHTTPS(t *testing.T) {
	cert, key := testtls.SelfSigned(t)
	cert2, key2 := testtls.SelfSigned(t)
	dir := t.TempDir()
	for name, b := range map[string][]byte{"m.key": key, "m.crt": cert, "other.key": key2} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	resolve := func(p string) string { return filepath.Join(dir, p) }
	str := func(b []byte) string { j, _ := json.Marshal(string(b)); return string(j) }

	for _, tt := range []struct {
		name, https string
		certs       int
		auth        tls.ClientAuthType
		want        string // a problem, "" for none
	}{
		{"files", `{"key": {"path": "m.key"}, "cert": {"path": "m.crt"}}`, 1, tls.NoClientCert, ""},
		{"PEM text", `{"key": ` + str(key) + `, "cert": ` + str(cert) + `}`, 1, tls.NoClientCert, ""},
		{"arrays", `{"key": [{"path": "m.key"}, ` + str(key2) + `], "cert": [{"path": "m.crt"}, ` + str(cert2) + `]}`, 2, tls.NoClientCert, ""},
		{"client certificates required", `{"key": {"path": "m.key"}, "cert": {"path": "m.crt"}, "requestCert": true}`, 1, tls.RequireAndVerifyClientCert, ""},
		{"client certificates asked for", `{"key": {"path": "m.key"}, "cert": {"path": "m.crt"}, "requestCert": true, "rejectUnauthorized": false}`, 1, tls.RequestClientCert, ""},
		{"no such file", `{"key": {"path": "nope.key"}, "cert": {"path": "m.crt"}}`, 0, 0, `/metrics/https/key/path: open `},
		{"not a pair", `{"key": {"path": "other.key"}, "cert": {"path": "m.crt"}}`, 0, 0, `/metrics/https/cert/path: the certificate and the key at /metrics/https/key/path do not make a key pair`},
		{"counts differ", `{"key": [{"path": "m.key"}, {"path": "other.key"}], "cert": {"path": "m.crt"}}`, 0, 0, `/metrics/https: 2 keys and 1 certificates`},
		{"not PEM", `{"key": "hello", "cert": {"path": "m.crt"}}`, 0, 0, `/metrics/https/cert/path: the certificate and the key at /metrics/https/key do not make a key pair`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, problems, _ := buildMetrics(json.RawMessage(`{"https": `+tt.https+`}`), resolve)
			if tt.want != "" {
				if len(problems) != 1 || !strings.Contains(problems[0].ptr+": "+problems[0].msg, tt.want) {
					t.Fatalf("problems %v, want one containing %q", problems, tt.want)
				}
				return
			}
			if len(problems) > 0 {
				t.Fatalf("problems %v", problems)
			}
			if m.TLS == nil || len(m.TLS.Certificates) != tt.certs || m.TLS.ClientAuth != tt.auth {
				t.Fatalf("TLS = %+v, want %d key pairs, client auth %v", m.TLS, tt.certs, tt.auth)
			}
		})
	}
}
