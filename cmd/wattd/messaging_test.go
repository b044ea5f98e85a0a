package main_test

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMessagingExample runs testdata/examples/messaging: the entrypoint
// reaches platformatic.messaging through the npm package
// @platformatic/globals and sends messages that wattd routes to the two
// workers of another application; every answer, and every failure Watt
// defines, is checked over HTTP.
func TestMessagingExample(t *testing.T) {
	integration(t)
	for _, n := range testNodes {
		node := nodePath(t, n)
		t.Run(nodeVersion(t, node), func(t *testing.T) {
			port := freePort(t)
			d := startWattd(t, fixture("examples/messaging"), port, startOpts{env: []string{"WATTD_NODE=" + node}})
			waitHTTP(t, d.url("/nothing"), 20*time.Second)

			type answer struct {
				OK        bool
				Undefined bool
				Result    json.RawMessage
				Error     struct {
					Message, Code, Name string
					StatusCode          int
					HandlerErrorCode    string
					HandlerError        *struct{ Message, Code string }
				}
			}
			call := func(path string) answer {
				t.Helper()
				code, body, err := get(fresh, d.url(path))
				var a answer
				if err != nil || code != 200 || json.Unmarshal([]byte(body), &a) != nil {
					t.Fatalf("%s: %d %v %s", path, code, err, body)
				}
				return a
			}

			by := map[string]bool{}
			for range 4 {
				a := call("/sum")
				var r struct {
					Sum int
					By  string
				}
				if !a.OK || json.Unmarshal(a.Result, &r) != nil || r.Sum != 10 {
					t.Fatalf("/sum: %+v %s", a, a.Result)
				}
				by[r.By] = true
			}
			if !by["worker worker 0"] || !by["worker worker 1"] {
				t.Fatalf("messages not spread over both workers: %v", by)
			}

			a := call("/fail")
			if a.OK || a.Error.Code != "PLT_ITC_HANDLER_FAILED" || a.Error.Message != "Handler failed with error: the worker refused" ||
				a.Error.Name != "FastifyError" || a.Error.StatusCode != 500 || a.Error.HandlerErrorCode != "E_REFUSED" ||
				a.Error.HandlerError == nil || a.Error.HandlerError.Message != "the worker refused" {
				t.Fatalf("/fail: %+v", a)
			}
			if a := call("/missing"); a.OK || a.Error.Code != "PLT_ITC_HANDLER_NOT_FOUND" || a.Error.Message != `Handler not found for request: "no-such-handler"` {
				t.Fatalf("/missing: %+v", a)
			}
			if a := call("/unknown"); a.OK || a.Error.Code != "PLT_RUNTIME_MESSAGING_ERROR" ||
				a.Error.Message != `Cannot send a message to application "nowhere": No workers available (no such application; known applications: front, worker)` {
				t.Fatalf("/unknown: %+v", a)
			}
			if a := call("/nothing"); !a.OK || !a.Undefined {
				t.Fatalf("/nothing: %+v", a)
			}
			if a := call("/self"); !a.OK || string(a.Result) != `{"data":{"hello":"me"},"from":{"application":"front","worker":0}}` {
				t.Fatalf("/self: %+v %s", a, a.Result)
			}
			for _, p := range []string{"/too-big", "/bigint"} {
				if a := call(p); a.OK || a.Error.Code != "PLT_RUNTIME_MESSAGING_ERROR" || !strings.Contains(a.Error.Message, "the message cannot be sent") {
					t.Fatalf("%s: %+v", p, a)
				}
			}
			start := time.Now()
			if a := call("/slow"); a.OK || a.Error.Message != `Cannot send a message to application "worker": Timeout while waiting for a response.` {
				t.Fatalf("/slow: %+v", a)
			}
			if took := time.Since(start); took < 1900*time.Millisecond {
				t.Fatalf("/slow failed after %v, before messagingTimeout (2000 ms)", took)
			}

			call("/notify")
			waitFor(t, 20*time.Second, "the notification to reach both workers", func() bool {
				a := call("/pings")
				var pings []struct {
					By           string
					Notification bool
				}
				json.Unmarshal(a.Result, &pings)
				seen := map[string]bool{}
				for _, p := range pings {
					seen[p.By] = p.Notification
				}
				return len(pings) == 2 && seen["worker worker 0"] && seen["worker worker 1"]
			})

			d.signal(syscall.SIGTERM)
			if code := d.wait(20 * time.Second); code != 0 {
				t.Fatalf("exit code %d", code)
			}
		})
	}
}
