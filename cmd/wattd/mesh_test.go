package main_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// meshProject is an entrypoint "caller" in front of two internal apps:
// "plain" (2 workers) and "broken" (never starts).
func meshProject(t *testing.T, extra map[string]any) string {
	cfg := map[string]any{
		"entrypoint": "caller",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"restart":    map[string]any{"initialDelay": 20, "maxDelay": 100, "maxRestarts": 2},
		"applications": []any{
			map[string]any{"id": "caller", "path": fixture("apps/caller")},
			map[string]any{"id": "plain", "path": fixture("apps/plain"), "workers": 2},
			map[string]any{"id": "broken", "path": fixture("faults/crash-start")},
		},
	}
	for k, v := range extra {
		cfg[k] = v
	}
	return project(t, cfg)
}

type callResult struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
	Error  string `json:"error"`
	Proxy  string `json:"proxy"`
}

func call(t *testing.T, d *daemon, route, app, path string) callResult {
	t.Helper()
	code, body, err := get(fresh, d.url(route+"?app="+app+"&path="+url.QueryEscape(path)))
	if err != nil || code != 200 {
		t.Fatalf("%s %s: %d %v %s", route, app, code, err, body)
	}
	var r callResult
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("%s: %v: %s", route, err, body)
	}
	return r
}

// TestMeshClients: unchanged Node code reaches another app by name with
// fetch and http.get, over the mesh, spread over its workers; POST bodies
// arrive; unknown and unavailable apps get clear answers; the Go client
// (ctl inject) and the proxy work; internal apps open no TCP port.
func TestMeshClients(t *testing.T) {
	integration(t)
	port := freePort(t)
	d := startWattd(t, meshProject(t, nil), port, startOpts{})
	waitHTTP(t, d.url("/env"), 20*time.Second)
	plain := d.waitReady("plain", 10*time.Second)
	waitFor(t, 20*time.Second, "broken to fail", func() bool { return d.app("broken").State == "failed" })

	pids := map[string]bool{}
	for _, route := range []string{"/fetch", "/get", "/axios", "/got", "/nodefetch"} {
		for range 20 {
			r := call(t, d, route, "plain", "/hello")
			if r.Status != 200 || !strings.Contains(r.Body, `"app":"plain"`) || !strings.Contains(r.Body, `"path":"/hello"`) {
				t.Fatalf("%s to plain.plt.local: %+v", route, r)
			}
			// A Unix socket has no peer address; the mesh gives loopback's,
			// as Watt's in-process calls do (Express's req.ip, Fastify's).
			if !strings.Contains(r.Body, `"peer":"127.0.0.1"`) {
				t.Fatalf("%s to plain.plt.local: the app saw no loopback peer: %s", route, r.Body)
			}
			var b struct{ PID int }
			json.Unmarshal([]byte(r.Body), &b)
			pids[strconv.Itoa(b.PID)] = true
		}
	}
	if len(pids) != 2 {
		t.Fatalf("mesh calls reached %d workers of plain, want both: %v", len(pids), pids)
	}
	if r := call(t, d, "/post", "plain", "/"); r.Status != 200 || !strings.Contains(r.Body, `{\"n\":42}`) {
		t.Fatalf("POST over the mesh: %+v", r)
	}
	if r := call(t, d, "/fetch", "broken", "/"); r.Status != 503 || !strings.Contains(r.Body, "broken") || !strings.Contains(r.Body, "crash loop") {
		t.Fatalf("fetch to a failed app: %+v, want 503 naming the app and why", r)
	}
	if r := call(t, d, "/fetch", "nosuch", "/"); r.Error == "" && r.Status < 500 || !strings.Contains(r.Error+r.Body, "plain") {
		t.Fatalf("fetch to an unknown app: %+v, want an error naming the known apps", r)
	}

	// The Go client, through ctl inject.
	out, err := d.ctl("inject", "plain", "-i", "-X", "POST", "-H", "X-Test: 1", "-d", "hi", "/x")
	if err != nil || !strings.Contains(out, "200 OK") || !strings.Contains(out, `"received":"hi"`) {
		t.Fatalf("ctl inject: %v\n%s", err, out)
	}
	if out, err := d.ctl("inject", "nosuch", "/"); err == nil || !strings.Contains(out, "plain") ||
		!strings.Contains(out, "GET http://nosuch.plt.local/: unknown app") || strings.Contains(out, `Get "http`) {
		t.Fatalf("ctl inject to an unknown app: %v\n%s", err, out)
	}

	// The proxy, for clients with no mesh support.
	env := call(t, d, "/env", "", "")
	pu, err := url.Parse(env.Proxy)
	if err != nil || pu.Host == "" {
		t.Fatalf("WATTD_MESH_PROXY %q", env.Proxy)
	}
	pc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	code, body, err := get(pc, "http://plain.plt.local/via-proxy")
	if err != nil || code != 200 || !strings.Contains(body, "/via-proxy") {
		t.Fatalf("through the proxy: %d %v %s", code, err, body)
	}
	if code, _, _ := get(pc, "http://example.com/"); code != 403 {
		t.Fatalf("the proxy forwarded a non-mesh host: %d", code)
	}

	// Internal workers listen on their mesh socket only.
	for _, w := range plain.Workers {
		if ports := tcpListenPorts(w.PID); len(ports) != 0 {
			t.Fatalf("internal worker %d listens on TCP %v", w.PID, ports)
		}
	}
}

// TestMeshSurvivesKilledTarget: while the caller's GETs run, target
// workers are killed; no GET fails.
func TestMeshSurvivesKilledTarget(t *testing.T) {
	integration(t)
	port := freePort(t)
	d := startWattd(t, meshProject(t, nil), port, startOpts{})
	waitHTTP(t, d.url("/env"), 20*time.Second)
	d.waitReady("plain", 10*time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	ok, failed := 0, []string{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				code, body, err := get(fresh, d.url("/fetch?app=plain&path=/slow%3Fms%3D20"))
				mu.Lock()
				if err == nil && code == 200 && strings.Contains(body, `"status":200`) {
					ok++
				} else if len(failed) < 10 {
					failed = append(failed, body)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range 3 {
		// Kill only while calls are flowing, so some are in flight.
		waitFor(t, 20*time.Second, "mesh calls to flow", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return ok >= (i+1)*200
		})
		a := d.waitReady("plain", 10*time.Second)
		victim := a.Workers[i%2].PID
		if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the killed worker to be replaced", func() bool {
			for _, w := range d.app("plain").Workers {
				if w.PID == victim {
					return false
				}
			}
			return true
		})
	}
	d.waitReady("plain", 10*time.Second)
	cancel()
	wg.Wait()
	if len(failed) > 0 || ok == 0 {
		t.Fatalf("%d mesh GETs failed while target workers were killed (ok %d): %v", len(failed), ok, failed)
	}
	t.Logf("%d mesh GETs, none failed, across 3 target worker kills", ok)
}

// tcpListenPorts lists the TCP ports pid has in LISTEN state.
func tcpListenPorts(pid int) []int {
	inodes := map[string]bool{}
	fds, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "fd", fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var ports []int
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, _ := os.ReadFile(f)
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fl := strings.Fields(line)
			if len(fl) < 10 || fl[3] != "0A" || !inodes[fl[9]] {
				continue
			}
			_, hexPort, _ := strings.Cut(fl[1], ":")
			p, _ := strconv.ParseInt(hexPort, 16, 32)
			ports = append(ports, int(p))
		}
	}
	return ports
}

// TestExamples runs the bundled mesh examples as a user would and checks
// their answers, on every node under test.
func TestExamples(t *testing.T) {
	integration(t)
	for _, n := range testNodes {
		node := nodePath(t, n)
		ver := nodeVersion(t, node)
		t.Run(ver+"/pyramid", func(t *testing.T) {
			port := freePort(t)
			d := startWattd(t, fixture("examples/pyramid"), port, startOpts{env: []string{"WATTD_NODE=" + node}})
			body := waitHTTP(t, d.url("/"), 20*time.Second)
			for _, app := range []string{"users", "orders", "catalog"} {
				if !strings.Contains(body, app) {
					t.Fatalf("pyramid answer lacks %s:\n%s", app, body)
				}
			}
			d.signal(syscall.SIGTERM)
			if code := d.wait(20 * time.Second); code != 0 {
				t.Fatalf("exit code %d", code)
			}
		})
		t.Run(ver+"/funnel", func(t *testing.T) {
			port := freePort(t)
			d := startWattd(t, fixture("examples/funnel"), port, startOpts{env: []string{"WATTD_NODE=" + node}})
			waitHTTP(t, d.url("/"), 20*time.Second)
			for range 20 {
				if code, body, err := get(fresh, d.url("/")); err != nil || code != 200 {
					t.Fatalf("funnel: %d %v %s", code, err, body)
				}
			}
			_, body, err := get(fresh, d.url("/results"))
			var res struct{ Total int }
			if err != nil || json.Unmarshal([]byte(body), &res) != nil || res.Total < 20 {
				t.Fatalf("funnel results: %v %s", err, body)
			}
			d.signal(syscall.SIGTERM)
			if code := d.wait(20 * time.Second); code != 0 {
				t.Fatalf("exit code %d", code)
			}
		})
	}
}

// TestMeshAppServerAddress: an application that is not the entrypoint is
// served on its mesh socket, yet its server's address() says what it asked
// listen() for, as where the port is bound: code builds URLs and logs from
// server.address().port. It said the socket's path (port undefined).
func TestMeshAppServerAddress(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	server := func(listen string) string {
		return `const http = require('node:http')
let atListen
const s = http.createServer((req, res) => res.end(JSON.stringify({ atListen, now: s.address(), url: String(new URL('http://localhost:' + s.address().port)) })))
s.listen(` + listen + `() => { atListen = s.address() })
`
	}
	writeFiles(t, dir, map[string]string{
		"web/index.js":  `require('node:http').createServer((req, res) => res.end('web')).listen(3000)` + "\n",
		"port/index.js": server("4567, "),
		"host/index.js": server("{ port: 4568, host: '127.0.0.1' }, "),
		"any/index.js":  server(""),
	})
	writeJSON(t, filepath.Join(dir, "watt.json"), map[string]any{
		"entrypoint": "web",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{
			map[string]any{"id": "web", "path": "web"},
			map[string]any{"id": "port", "path": "port"},
			map[string]any{"id": "host", "path": "host"},
			map[string]any{"id": "any", "path": "any"},
		},
	})
	d := startWattd(t, dir, freePort(t), startOpts{})
	d.waitReady("web", 30*time.Second)
	for app, want := range map[string]string{
		"port": `{"address":"::","family":"IPv6","port":4567}`,
		"host": `{"address":"127.0.0.1","family":"IPv4","port":4568}`,
		"any":  `{"address":"::","family":"IPv6","port":0}`,
	} {
		out, err := d.ctl("inject", app, "/")
		if err != nil || !strings.Contains(out, `"atListen":`+want) || !strings.Contains(out, `"now":`+want) {
			t.Errorf("%s: server.address(): %v\n%s\nwant %s", app, err, out, want)
		}
	}
}

// retryLoopApp is an entrypoint that, on GET /start, calls
// http://c.plt.local/ok in loops without any delay between tries, one
// with fetch and one with http.get, until each gets an answer; GET /status
// says how far they got.
const retryLoopApp = `const http = require('node:http')
const st = { fetchOk: 0, getOk: 0, fails: 0 }
function viaGet () {
  return new Promise((resolve, reject) => {
    http.get('http://c.plt.local/ok', (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)) }).on('error', reject)
  })
}
async function loop (call, key) {
  const until = Date.now() + 20000
  while (Date.now() < until) {
    try {
      if (await call() === 200) { st[key]++; return }
    } catch { st.fails++ }
  }
}
http.createServer((req, res) => {
  if (req.url === '/start') {
    setImmediate(() => {
      loop(() => fetch('http://c.plt.local/ok').then((r) => r.text().then(() => r.status)), 'fetchOk')
      loop(viaGet, 'getOk')
    })
  }
  res.end(JSON.stringify(st))
}).listen(3000)
`

// TestMeshUnknownAppRetryLoopSeesItAdded: a retry loop without a delay
// against an app that is not on the mesh yet still lets the worker hear of
// it: the unknown-app failure comes back through the event loop, as a DNS
// failure does, so the table that a reload sends gets in, and the loop's
// next try reaches the app.
func TestMeshUnknownAppRetryLoopSeesItAdded(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	writeFiles(t, filepath.Join(dir, "front"), map[string]string{
		"package.json": `{"name": "front", "private": true, "main": "index.js"}`,
		"index.js":     retryLoopApp,
	})
	writeFiles(t, filepath.Join(dir, "c"), map[string]string{
		"package.json": `{"name": "c", "private": true, "main": "index.js"}`,
		"index.js":     "require('node:http').createServer((q, s) => s.end('c')).listen(3000)\n",
	})
	cfg := map[string]any{
		"entrypoint":   "front",
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "front", "path": "./front"}},
	}
	writeJSON(t, filepath.Join(dir, "watt.json"), cfg)
	d := startWattd(t, dir, freePort(t), startOpts{})
	waitHTTP(t, d.url("/status"), 20*time.Second)
	if code, body, err := get(fresh, d.url("/start")); err != nil || code != 200 {
		t.Fatalf("GET /start: %d %v %s", code, err, body)
	}
	cfg["applications"] = append(cfg["applications"].([]any), map[string]any{"id": "c", "path": "./c"})
	writeJSON(t, filepath.Join(dir, "watt.json"), cfg)
	if out, err := d.ctl("reload"); err != nil {
		t.Fatalf("ctl reload: %v\n%s", err, out)
	}
	d.waitReady("c", 20*time.Second)
	var last string
	waitFor(t, 10*time.Second, "both retry loops to reach c", func() bool {
		_, body, _ := get(fresh, d.url("/status"))
		last = body
		var st struct{ FetchOk, GetOk, Fails int }
		return json.Unmarshal([]byte(body), &st) == nil && st.FetchOk == 1 && st.GetOk == 1
	})
	t.Logf("retry loops: %s", last)
}

// TestMeshDisabledAppSaysSo: a call to an application that watt.json turns
// off ("enabled": false) says it is disabled, over the mesh (fetch,
// http.get) and in messaging, rather than calling it unknown.
func TestMeshDisabledAppSaysSo(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	writeFiles(t, filepath.Join(dir, "front"), map[string]string{
		"package.json": `{"name": "front", "private": true, "main": "index.js"}`,
		"index.js": `const http = require('node:http')
const err = (e) => String(e && e.cause ? e.cause.message : e && e.message)
http.createServer(async (req, res) => {
  const out = {}
  try { await fetch('http://c.plt.local/') } catch (e) { out.fetch = err(e) }
  out.get = await new Promise((resolve) => http.get('http://c.plt.local/', () => resolve('answered')).on('error', (e) => resolve(err(e))))
  try { await globalThis.platformatic.messaging.send('c', 'hi', 1) } catch (e) { out.send = err(e) }
  res.end(JSON.stringify(out))
}).listen(3000)
`,
	})
	writeFiles(t, filepath.Join(dir, "c"), map[string]string{
		"package.json": `{"name": "c", "private": true, "main": "index.js"}`,
		"index.js":     "require('node:http').createServer((q, s) => s.end('c')).listen(3000)\n",
	})
	writeJSON(t, filepath.Join(dir, "watt.json"), map[string]any{
		"entrypoint": "front",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{
			map[string]any{"id": "front", "path": "./front"},
			map[string]any{"id": "c", "path": "./c", "enabled": false},
		},
	})
	d := startWattd(t, dir, freePort(t), startOpts{})
	body := waitHTTP(t, d.url("/"), 20*time.Second)
	var out struct{ Fetch, Get, Send string }
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if want := `getaddrinfo ENOTFOUND c.plt.local: app "c" is disabled ("enabled": false in watt.json)`; out.Fetch != want || out.Get != want {
		t.Errorf("fetch: %q\nhttp.get: %q\nwant %q", out.Fetch, out.Get, want)
	}
	if want := `Cannot send a message to application "c": No workers available (application "c" is disabled: "enabled": false in watt.json)`; out.Send != want {
		t.Errorf("messaging.send: %q\nwant %q", out.Send, want)
	}
}

// TestInjectPrintsTrailers: ctl inject -i prints a response's trailers
// after its body, and --json gives them as "trailers".
func TestInjectPrintsTrailers(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	writeFiles(t, filepath.Join(dir, "web"), map[string]string{
		"package.json": `{"name": "web", "private": true, "main": "index.js"}`,
		"index.js": `require('node:http').createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' })
  res.write('hello')
  res.addTrailers({ 'x-checksum': 'abc123' })
  res.end()
}).listen(3000)
`,
	})
	writeJSON(t, filepath.Join(dir, "watt.json"), map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": "./web"}},
	})
	d := startWattd(t, dir, freePort(t), startOpts{})
	d.waitReady("web", 20*time.Second)
	out, err := d.ctl("inject", "web", "-i", "/")
	if err != nil || !strings.HasPrefix(out, "HTTP/1.1 200 OK\n") || !strings.HasSuffix(out, "\n\nhello\nX-Checksum: abc123\n") {
		t.Errorf("ctl inject -i: %v\n%q", err, out)
	}
	out, err = d.ctl("inject", "web", "/")
	if err != nil || out != "hello" {
		t.Errorf("ctl inject without -i: %v\n%q", err, out)
	}
	out, err = d.ctl("inject", "web", "--json", "/")
	var res struct {
		Body     string
		Trailers map[string][]string
	}
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || res.Body != "hello" || len(res.Trailers["X-Checksum"]) != 1 || res.Trailers["X-Checksum"][0] != "abc123" {
		t.Errorf("ctl inject --json: %v\n%s", err, out)
	}
}
