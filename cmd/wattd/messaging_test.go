package main_test

import (
	"encoding/json"
	"path/filepath"
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

// TestMessageToGoSDKAppFailsAtOnce: a Go program on the SDK has no
// messaging handlers, so a Node.js application's messaging.send to it gets
// Watt's "handler not found" fault right away, as a Node.js application
// without the handler answers, instead of waiting out messagingTimeout for a
// reply that never comes.
func TestMessageToGoSDKAppFailsAtOnce(t *testing.T) {
	integration(t)
	dir := project(t, map[string]any{
		"entrypoint":       "front",
		"messagingTimeout": 10000,
		"server":           map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{
			map[string]any{"id": "front", "path": "./front"},
			map[string]any{"id": "api", "path": fixture("apps/gosdk")},
		},
	})
	writeFiles(t, filepath.Join(dir, "front"), map[string]string{
		"package.json": `{"name": "front", "main": "index.js"}`,
		"index.js": `const http = require('node:http')
http.createServer(async (req, res) => {
  const start = Date.now()
  try {
    await globalThis.platformatic.messaging.send('api', 'sum', [1, 2])
    res.end(JSON.stringify({ ok: true }))
  } catch (err) {
    res.end(JSON.stringify({ code: err.code, message: err.message, ms: Date.now() - start }))
  }
}).listen(process.env.PORT || 3000)
`,
	})
	port := freePort(t)
	buildApp(t, dir, "api", port)
	d := startWattd(t, dir, port, startOpts{})
	d.waitReady("api", 30*time.Second)
	body := waitHTTP(t, d.url("/"), 30*time.Second)
	var a struct {
		Code, Message string
		Ms            int
	}
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("GET /: %v %s", err, body)
	}
	if a.Code != "PLT_ITC_HANDLER_NOT_FOUND" || a.Message != `Handler not found for request: "sum"` {
		t.Fatalf("the message to the Go app failed with %+v, want Watt's handler-not-found fault", a)
	}
	if a.Ms > 5000 {
		t.Fatalf("the fault came after %d ms, as if the message had timed out", a.Ms)
	}
	d.signal(syscall.SIGTERM)
	if code := d.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}
