package main_test

import (
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

// TestClientRequestMetrics runs Watt's httpClientMetrics: the caller's
// outgoing requests show in http_client_request_duration_seconds by
// method, status code, origin and error, both the mesh fetches (which
// wattd routes over node:http) and a fetch to another host (undici's).
// Without the key the family is absent.
func TestClientRequestMetrics(t *testing.T) {
	integration(t)
	outside := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}))
	defer outside.Close()
	// A port nothing listens on: the fetch fails to connect.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()

	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprint("httpClientMetrics ", on), func(t *testing.T) {
			port, mport := freePort(t), freePort(t)
			dir := project(t, map[string]any{
				"entrypoint": "caller",
				"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
				"metrics":    map[string]any{"hostname": "127.0.0.1", "port": mport, "httpClientMetrics": on},
				"applications": []any{
					map[string]any{"id": "caller", "path": fixture("apps/caller")},
					map[string]any{"id": "api", "path": fixture("apps/plain")},
				},
			})
			d := startWattd(t, dir, port, startOpts{})
			d.waitReady("caller", 30*time.Second)
			d.waitReady("api", 30*time.Second)
			call := func(path string) {
				t.Helper()
				code, body, err := get(fresh, fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
				if err != nil || code != http.StatusOK {
					t.Fatalf("%s: %d %q %v", path, code, body, err)
				}
			}
			for range 3 {
				call("/fetch?app=api&path=/")
			}
			call("/post?app=api&path=/x")
			call("/fetch?app=nope&path=/")
			call("/fetchurl?url=" + url.QueryEscape(outside.URL+"/tea"))
			call("/fetchurl?url=" + url.QueryEscape(closed+"/"))

			endpoint := fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)
			if !on {
				// The requests' own histogram arrives with the next report;
				// by then the client one would have too.
				waitFor(t, 10*time.Second, "caller's request durations", func() bool {
					fams, err := scrape(endpoint, "", "")
					return err == nil && fams["http_request_all_duration_seconds"] != nil
				})
				fams, _ := scrape(endpoint, "", "")
				if f := fams["http_client_request_duration_seconds"]; f != nil {
					t.Errorf("http_client_request_duration_seconds without httpClientMetrics: %v", f)
				}
				return
			}
			want := map[string]uint64{
				"GET 200 http://api.plt.local ":        3,
				"POST 200 http://api.plt.local ":       1,
				"GET  http://nope.plt.local ENOTFOUND": 1,
				"GET 418 " + outside.URL + " ":         1,
				"GET  " + closed + " ECONNREFUSED":     1,
			}
			got := waitHistogramCounts(endpoint, "http_client_request_duration_seconds", want, func(l map[string]string) string {
				if l["applicationId"] != "caller" || l["workerId"] != "0" {
					return ""
				}
				return l["method"] + " " + l["status_code"] + " " + l["dispatcher_stats_url"] + " " + l["error_type"]
			})
			if !maps.Equal(got, want) {
				t.Errorf("caller's outgoing requests (method status origin error: count):\n got %v\nwant %v", got, want)
			}
		})
	}
}
