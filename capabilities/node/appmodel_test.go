package node

// Watt's application model under the preload (preload/appmodel.cjs), with
// real Node.js workers and the fixture apps of testdata/apps/factories,
// which use fastify and express from npm (make deps installs them).

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wattd/wattd/capabilities"
	"github.com/wattd/wattd/ipc"
)

// factoryApp returns the absolute directory of testdata/apps/factories/name,
// skipping when the fixture packages are not installed.
// fixtureApp is the folder of one factories app that needs none of the
// npm packages.
func fixtureApp(t *testing.T, name string) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "testdata", "apps", "factories", name))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func factoryApp(t *testing.T, name string) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", "testdata", "apps", "factories"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "node_modules", "fastify")); err != nil {
		t.Skipf("fixture packages not installed (make deps): %v", err)
	}
	return filepath.Join(root, name)
}

// expectReady waits for ready and checks its listeners.
func (w *worker) expectReady(listeners ...string) {
	w.t.Helper()
	m := w.expect(ipc.TypeReady)
	if !slices.Equal(m.Listeners, listeners) {
		w.t.Fatalf("ready listeners = %v, want %v", m.Listeners, listeners)
	}
}

// waitStderr waits until the worker's stderr contains s.
func (w *worker) waitStderr(s string) string {
	w.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		if out := w.stderr.String(); strings.Contains(out, s) {
			return out
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.t.Fatalf("stderr never said %q; it has:\n%s", s, w.stderr.String())
	return ""
}

func TestFactoryFastifyCreate(t *testing.T) {
	w := startWorker(t, workerOpts{app: "fastify-create", dir: factoryApp(t, "fastify-create"), entrypoint: true})
	w.handshake()
	w.event("created")
	w.expectReady(ipc.ListenerHTTP, ipc.ListenerMesh)
	for _, c := range []struct {
		client *http.Client
		url    string
	}{{tcpClient(), "http://" + w.tcpAddr + "/"}, {unixClient(w.meshPath), "http://fastify-create.plt.local/"}} {
		if got := getJSON(t, c.client, c.url); got["app"] != "fastify-create" {
			t.Errorf("GET %s = %v", c.url, got)
		}
	}
	// The app binds no port of its own: the only one is wattd's.
	_, port, _ := net.SplitHostPort(w.tcpAddr)
	if ports := tcpListenPorts(t, w.pid); len(ports) != 1 || strconv.Itoa(ports[0]) != port {
		t.Errorf("worker listens on TCP ports %v, want only %s", ports, port)
	}
}

func TestFactoryExpressBuildESM(t *testing.T) {
	w := startWorker(t, workerOpts{app: "express-build", dir: factoryApp(t, "express-build")})
	w.handshake()
	w.expectReady(ipc.ListenerMesh)
	got := getJSON(t, unixClient(w.meshPath), "http://express-build.plt.local/")
	if got["app"] != "express-build" || got["factory"] != "build" {
		t.Errorf("GET = %v, want build() served", got)
	}
	if out := w.stderr.String(); strings.Contains(out, "create() must not be called") {
		t.Errorf("create() was called although build() exists:\n%s", out)
	}
}

func TestFactoryListenerWithWattArgs(t *testing.T) {
	inherited := "--no-warnings"
	t.Setenv("NODE_OPTIONS", inherited)
	w := startWorker(t, workerOpts{
		app: "listener", dir: factoryApp(t, "listener"), entrypoint: true,
		nodeOpts: "--max-old-space-size=200",
		watt: capabilities.WattApp{
			ExecArgv:   []string{"--stack-size=2000"},
			Arguments:  []string{"--port", "9", "two words"},
			SourceMaps: true,
		},
	})
	w.handshake()
	w.expectReady(ipc.ListenerHTTP, ipc.ListenerMesh)
	got := getJSON(t, tcpClient(), "http://"+w.tcpAddr+"/")
	if got["app"] != "listener" {
		t.Fatalf("GET = %v", got)
	}
	argv := strings.Join(anyStrings(got["argv"]), "|")
	if argv != "--port|9|two words" {
		t.Errorf("process.argv[2:] = %q, want the arguments", argv)
	}
	execArgv := anyStrings(got["execArgv"])
	if !slices.Contains(execArgv, "--stack-size=2000") || !slices.Contains(execArgv, "--enable-source-maps") {
		t.Errorf("process.execArgv = %q, want execArgv and --enable-source-maps", execArgv)
	}
	if got["sourceMaps"] != true {
		t.Errorf("source maps not enabled: %v", got)
	}
	if got["nodeOptions"] != inherited+" --max-old-space-size=200" {
		t.Errorf("NODE_OPTIONS = %q, want the inherited value then nodeOptions", got["nodeOptions"])
	}
}

func anyStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// TestFactoryCloseOnDrain: on drain, the in-flight request finishes, then
// the module's close() and the Fastify app's onClose hooks run, and only then
// is "drained" sent (wattd's SIGTERM follows it).
func TestFactoryCloseOnDrain(t *testing.T) {
	w := startWorker(t, workerOpts{app: "fastify-create", dir: factoryApp(t, "fastify-create"), entrypoint: true})
	w.handshake()
	w.expectReady(ipc.ListenerHTTP, ipc.ListenerMesh)

	slow := make(chan error, 1)
	go func() {
		resp, err := tcpClient().Get("http://" + w.tcpAddr + "/slow")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = &statusError{resp.StatusCode}
			}
		}
		slow <- err
	}()
	// The request is in flight once its handler says so.
	w.event("slow-start")
	w.send(&ipc.Message{Type: ipc.TypeDrain, TimeoutMs: 10000})
	if err := <-slow; err != nil {
		t.Fatalf("in-flight request: %v", err)
	}
	w.event("close-export")
	w.event("fastify-onClose")
	w.expect(ipc.TypeDrained)
}

type statusError struct{ code int }

func (e *statusError) Error() string { return http.StatusText(e.code) }

// TestBackgroundApp: node.hasServer false; ready at once with no listener,
// kept up with nothing of its own to run, its sockets answer 503, and its
// close() runs on drain.
func TestBackgroundApp(t *testing.T) {
	w := startWorker(t, workerOpts{app: "background", dir: factoryApp(t, "background"),
		watt: capabilities.WattApp{NoServer: true}})
	w.handshake()
	w.event("loaded")
	w.expectReady()
	expectServesNothing(t, w)
	// Nothing but the hold keeps this process up; it must still be there.
	select {
	case <-w.exited:
		t.Fatalf("background worker exited on its own: %v", w.waitErr)
	case <-time.After(500 * time.Millisecond):
	}
	w.send(&ipc.Message{Type: ipc.TypeDrain, TimeoutMs: 5000})
	w.event("close-export")
	w.expect(ipc.TypeDrained)
	// Once closed it is let go and ends by itself.
	if err := w.waitExit(); err != nil {
		t.Errorf("background worker exit after drain: %v", err)
	}
}

// expectServesNothing: a request to the background app's mesh socket is
// answered at once with a 503 that says why.
func expectServesNothing(t *testing.T, w *worker) {
	t.Helper()
	c := unixClient(w.meshPath)
	c.Timeout = 5 * time.Second
	resp, err := c.Get("http://app.plt.local/")
	if err != nil {
		t.Fatalf("mesh request to a background app: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "background") {
		t.Errorf("mesh request = %d %q, want 503 saying it is a background app", resp.StatusCode, body)
	}
}

// TestBackgroundFromTheModule: a module exporting hasServer = false, or a
// factory whose result says isBackgroundApplication, is a background app
// without any config, as in Watt: ready with no listener, its socket
// answers 503, and its close() runs on drain.
func TestBackgroundFromTheModule(t *testing.T) {
	for _, c := range []struct{ dir, closed string }{{"worker", "close-export"}, {"bg-factory", "close-app"}} {
		t.Run(c.dir, func(t *testing.T) {
			w := startWorker(t, workerOpts{app: "bg", dir: fixtureApp(t, c.dir)})
			w.handshake()
			w.event("loaded")
			w.expectReady()
			expectServesNothing(t, w)
			w.send(&ipc.Message{Type: ipc.TypeDrain, TimeoutMs: 5000})
			w.event(c.closed)
			w.expect(ipc.TypeDrained)
		})
	}
}

// TestBackgroundStandbyRefuses: a standby of an app that turns out to be
// a background app (its module says so) has no listen() to hold: it ends
// at once, saying why, instead of being promoted to serve nothing.
func TestBackgroundStandbyRefuses(t *testing.T) {
	w := startWorker(t, workerOpts{app: "bg", dir: fixtureApp(t, "bg-factory"), standbySlots: 1})
	w.handshake()
	if err := w.waitExit(); err == nil {
		t.Fatal("a standby of a background app exited 0")
	}
	if out := w.stderr.String(); !strings.Contains(out, "cannot be a standby worker") {
		t.Errorf("stderr does not say why:\n%s", out)
	}
}

// TestSilentModuleSaysWhy: a module that neither listens nor exports a
// factory ends; the worker says so instead of exiting without a word.
func TestSilentModuleSaysWhy(t *testing.T) {
	w := startWorker(t, workerOpts{app: "silent", dir: factoryApp(t, "silent")})
	w.handshake()
	if err := w.waitExit(); err != nil {
		t.Fatalf("exit = %v, want status 0", err)
	}
	out := w.stderr.String()
	for _, want := range []string{"index.js", "without having listened", "it exports handler", "build()/create()", "node.hasServer"} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr lacks %q:\n%s", want, out)
		}
	}
}

func TestPreloadModulesInOrder(t *testing.T) {
	pre := factoryApp(t, "preloads")
	w := startWorker(t, workerOpts{app: "preloaded", dir: factoryApp(t, "preloaded"), entrypoint: true,
		watt: capabilities.WattApp{Preload: []string{filepath.Join(pre, "first.cjs"), filepath.Join(pre, "second.mjs")}}})
	w.handshake()
	w.expectReady(ipc.ListenerHTTP, ipc.ListenerMesh)
	got := getJSON(t, tcpClient(), "http://"+w.tcpAddr+"/")
	if order := strings.Join(anyStrings(got["order"]), ","); order != "first.cjs,second.mjs" {
		t.Errorf("preload order seen by the app = %q", order)
	}
}

func TestBrokenPreloadFailsTheStart(t *testing.T) {
	pre := factoryApp(t, "preloads")
	w := startWorker(t, workerOpts{app: "preloaded", dir: factoryApp(t, "preloaded"), entrypoint: true,
		watt: capabilities.WattApp{Preload: []string{filepath.Join(pre, "broken.mjs")}}})
	w.handshake()
	if err := w.waitExit(); err == nil {
		t.Fatal("worker with a broken preload exited 0")
	}
	out := w.stderr.String()
	if !strings.Contains(out, "broken.mjs") || !strings.Contains(out, "broken preload on purpose") {
		t.Errorf("stderr does not name the preload and its error:\n%s", out)
	}
}

// TestNodeMain: node.main picks the entry over package.json.
func TestNodeMain(t *testing.T) {
	w := startWorker(t, workerOpts{app: "main", dir: factoryApp(t, "."), entrypoint: true,
		watt: capabilities.WattApp{Main: "listener/index.js"}})
	w.handshake()
	w.expectReady(ipc.ListenerHTTP, ipc.ListenerMesh)
	if got := getJSON(t, tcpClient(), "http://"+w.tcpAddr+"/"); got["app"] != "listener" {
		t.Errorf("GET = %v", got)
	}
}

// TestFactoryWithImportFlag: an --import in execArgv makes node load even a
// CommonJS entry through its ES module loader, asynchronously; the factory
// is still found once the entry has loaded, and the entry is still node's
// main module.
func TestFactoryWithImportFlag(t *testing.T) {
	pre := factoryApp(t, "preloads")
	w := startWorker(t, workerOpts{app: "listener", dir: factoryApp(t, "listener"), entrypoint: true,
		watt: capabilities.WattApp{ExecArgv: []string{"--import", filepath.Join(pre, "second.mjs")}}})
	w.handshake()
	w.expectReady(ipc.ListenerHTTP, ipc.ListenerMesh)
	if got := getJSON(t, tcpClient(), "http://"+w.tcpAddr+"/"); got["app"] != "listener" || got["isMain"] != true {
		t.Errorf("GET = %v, want the listener app, run as the main module", got)
	}
}

// TestFactoryHTTPServer: create() returning an http.Server that is not
// listening, as in the app Watt's generator writes.
func TestFactoryHTTPServer(t *testing.T) {
	w := startWorker(t, workerOpts{app: "http-server", dir: factoryApp(t, "http-server"), entrypoint: true})
	w.handshake()
	w.expectReady(ipc.ListenerHTTP, ipc.ListenerMesh)
	for _, c := range []struct {
		client *http.Client
		url    string
	}{{tcpClient(), "http://" + w.tcpAddr + "/"}, {unixClient(w.meshPath), "http://http-server.plt.local/"}} {
		if got := getJSON(t, c.client, c.url); got["hello"] != "world" {
			t.Errorf("GET %s = %v", c.url, got)
		}
	}
}

// TestFactoryFastifyOnMesh: the same Fastify factory in an app that is not
// the entrypoint listens on its mesh socket only.
func TestFactoryFastifyOnMesh(t *testing.T) {
	w := startWorker(t, workerOpts{app: "fastify-create", dir: factoryApp(t, "fastify-create")})
	w.handshake()
	w.expectReady(ipc.ListenerMesh)
	if got := getJSON(t, unixClient(w.meshPath), "http://fastify-create.plt.local/"); got["app"] != "fastify-create" {
		t.Errorf("mesh GET = %v", got)
	}
	if ports := tcpListenPorts(t, w.pid); len(ports) > 0 {
		t.Errorf("non-entrypoint worker listens on TCP ports %v", ports)
	}
	if out := w.stderr.String(); strings.Contains(out, "not binding the same app again") {
		t.Errorf("Fastify bound twice:\n%s", out)
	}
}
