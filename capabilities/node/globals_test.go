package node

// Tests of globalThis.platformatic (preload/globals.cjs, logger.cjs): a
// real Node.js worker under the preload, with the test playing wattd on
// the control channel and writing the app info file wattd would write.

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wattd/wattd/ipc"
)

// writeInfo writes an app info file for the globals fixture and returns
// its path.
func writeInfo(t *testing.T, info ipc.AppInfo) string {
	t.Helper()
	b, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "globals.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func fixtureInfo(t *testing.T) ipc.AppInfo {
	dir, err := filepath.Abs(filepath.Join("testdata", "globals"))
	if err != nil {
		t.Fatal(err)
	}
	return ipc.AppInfo{
		ApplicationID:     "globals",
		Entrypoint:        true,
		Root:              dir,
		Host:              "127.0.0.1",
		Port:              3042,
		BasePath:          "/api/",
		LogLevel:          "debug",
		RuntimeConfig:     map[string]any{"entrypoint": "globals", "workers": 1},
		ApplicationConfig: map[string]any{"id": "globals", "localUrl": "http://globals.plt.local"},
		Config:            map[string]any{"node": map[string]any{"hasServer": true}},
	}
}

func TestGlobalsFields(t *testing.T) {
	info := fixtureInfo(t)
	w := startWorker(t, workerOpts{app: "globals", entrypoint: true, env: map[string]string{
		ipc.EnvAppInfo: writeInfo(t, info), "GLOBALS_SEND_MESSAGE": "1"}})
	w.handshake()
	// platformatic.messaging is the messaging module's: its send reaches
	// wattd, whose answer comes back as the promise's rejection.
	for range 2 {
		w.expect(ipc.TypeCheckSet)
	}
	msg := w.expect(ipc.TypeMessage)
	if msg.To != "other" || msg.Name != "ping" {
		t.Fatalf("message = %+v", msg)
	}
	w.send(&ipc.Message{Type: ipc.TypeReply, ID: msg.ID, Fault: &ipc.Fault{
		Message: `Cannot send a message to application "other": No workers available`, Code: "PLT_RUNTIME_MESSAGING_ERROR"}})
	g := w.event("globals")
	if g["present"] != true {
		t.Fatalf("globalThis.platformatic missing: %v", g)
	}
	var fields []string
	for _, f := range g["fields"].([]any) {
		fields = append(fields, f.(string))
	}
	// The fields @platformatic/globals has getters or setters for that
	// wattd provides; prometheus is absent (no prom-client here).
	for _, want := range []string{"applicationId", "workerId", "isEntrypoint", "runtimeId", "root", "host", "port",
		"basePath", "logLevel", "logger", "events", "closing", "config", "applicationConfig", "runtimeConfig",
		"setBasePath", "setCustomHealthCheck", "setCustomReadinessCheck", "sendHealthSignal", "messaging",
		"wantsAbsoluteUrls", "runtimeBasePath"} {
		if !slices.Contains(fields, want) {
			t.Errorf("field %q not set; fields: %v", want, fields)
		}
	}
	if slices.Contains(fields, "prometheus") {
		t.Errorf("prometheus set though prom-client cannot be resolved from the app")
	}
	v := g["values"].(map[string]any)
	wantRoot := (&url.URL{Scheme: "file", Path: info.Root}).String()
	checks := map[string]any{
		"applicationId": "globals", "workerId": 0.0, "isEntrypoint": true, "root": wantRoot,
		"host": "127.0.0.1", "port": 3042.0, "basePath": "/api/", "logLevel": "debug", "closing": false,
		"runtimeId": float64(w.pid), "logger": "object", "events": "object", "messaging": "object",
		"setCustomHealthCheck": "function", "sendHealthSignal": "function",
	}
	for k, want := range checks {
		if v[k] != want {
			t.Errorf("platformatic.%s = %#v, want %#v", k, v[k], want)
		}
	}
	if rc, _ := v["runtimeConfig"].(map[string]any); rc["entrypoint"] != "globals" {
		t.Errorf("runtimeConfig = %v", v["runtimeConfig"])
	}
	if ac, _ := v["applicationConfig"].(map[string]any); ac["localUrl"] != "http://globals.plt.local" {
		t.Errorf("applicationConfig = %v", v["applicationConfig"])
	}
	if m := w.event("messaging"); m["error"] != `Cannot send a message to application "other": No workers available` {
		t.Errorf("messaging.send: %v", m)
	}
}

// TestGlobalsWithoutInfoFile: the ids still come from the environment,
// and fields only the file can give are absent rather than wrong; an info
// file that cannot be read is reported and changes nothing else.
func TestGlobalsWithoutInfoFile(t *testing.T) {
	t.Run("none", func(t *testing.T) { globalsWithoutInfo(t, nil) })
	t.Run("unreadable", func(t *testing.T) {
		globalsWithoutInfo(t, map[string]string{ipc.EnvAppInfo: "/nonexistent/app.json"})
	})
}

func globalsWithoutInfo(t *testing.T, env map[string]string) {
	w := startWorker(t, workerOpts{app: "globals", env: env})
	w.handshake()
	g := w.event("globals")
	v := g["values"].(map[string]any)
	if v["applicationId"] != "globals" || v["workerId"] != 0.0 || v["isEntrypoint"] != false || v["logLevel"] != "info" ||
		v["runtimeBasePath"] != nil || !slices.Contains(g["fields"].([]any), any("basePath")) {
		t.Errorf("values = %v", v)
	}
	for _, f := range g["fields"].([]any) {
		switch f {
		case "host", "port", "config", "runtimeConfig", "applicationConfig":
			t.Errorf("field %q set without an app info file", f)
		}
	}
	w.event("listening")
	if path := env[ipc.EnvAppInfo]; path != "" {
		if !strings.Contains(w.stderr.String(), "cannot read the app info file "+path) {
			t.Errorf("no warning about the unreadable file; stderr:\n%s", w.stderr.String())
		}
	}
}

// TestGlobalsLogger checks the lines of the pino-compatible logger: pino's
// envelope and member order, the level threshold from the info file,
// child bindings, error serialization and printf arguments.
func TestGlobalsLogger(t *testing.T) {
	w := startWorker(t, workerOpts{app: "globals", entrypoint: true, env: map[string]string{ipc.EnvAppInfo: writeInfo(t, fixtureInfo(t))}})
	w.handshake()
	hostname, _ := os.Hostname()
	var lines []map[string]any
	for range 5 {
		lines = append(lines, w.event("log"))
	}
	want := []struct {
		level float64
		msg   string
	}{{20, "debug line"}, {30, "info line"}, {40, "warn line"}, {50, "boom"}, {60, "fatal line"}}
	for i, l := range lines {
		if l["level"] != want[i].level || l["msg"] != want[i].msg {
			t.Errorf("line %d = %v, want level %v msg %q (trace must be filtered at debug)", i, l, want[i].level, want[i].msg)
		}
		if l["pid"] != float64(w.pid) || l["hostname"] != hostname {
			t.Errorf("line %d: pid/hostname = %v/%v", i, l["pid"], l["hostname"])
		}
		if _, ok := l["time"].(float64); !ok {
			t.Errorf("line %d: time = %v", i, l["time"])
		}
	}
	if lines[1]["n"] != 1.0 {
		t.Errorf("merge object lost: %v", lines[1])
	}
	if e, _ := lines[3]["err"].(map[string]any); e["type"] != "Error" || e["message"] != "boom" || e["stack"] == nil {
		t.Errorf("error not serialized as pino does: %v", lines[3])
	}
	if lines[4]["depth"] != 2.0 || lines[4]["obj"] == nil {
		t.Errorf("child binding or nested object lost: %v", lines[4])
	}
	b := w.event("bindings")
	if root, _ := b["root"].(map[string]any); len(root) != 0 {
		t.Errorf("root bindings = %v, want {}", b["root"])
	}
	if d, _ := b["deeper"].(map[string]any); d["event"] != "log" || d["depth"] != 2.0 {
		t.Errorf("child bindings = %v", b["deeper"])
	}
	if b["level"] != "debug" || b["enabled"] != true {
		t.Errorf("level = %v, isLevelEnabled(info) = %v", b["level"], b["enabled"])
	}
}

// TestGlobalsChecksAndSignals: the app's custom checks are announced,
// asked for and answered with Watt's reading of their results; health
// signals arrive batched; a drain sets closing and emits Watt's events.
func TestGlobalsChecksAndSignals(t *testing.T) {
	w := startWorker(t, workerOpts{app: "globals", entrypoint: true, env: map[string]string{ipc.EnvAppInfo: writeInfo(t, fixtureInfo(t))}})
	w.handshake()
	set := map[string]bool{}
	for range 2 {
		m := w.expect(ipc.TypeCheckSet)
		set[m.Check.Kind] = true
	}
	if !set[ipc.CheckHealth] || !set[ipc.CheckReadiness] {
		t.Fatalf("checkSet kinds = %v", set)
	}
	w.event("listening")
	w.expect(ipc.TypeReady)

	ask := func(id uint64, kind string) ipc.Check {
		t.Helper()
		w.send(&ipc.Message{Type: ipc.TypeCheck, Check: &ipc.Check{ID: id, Kind: kind}})
		m := w.expect(ipc.TypeChecked)
		if m.Check == nil || m.Check.ID != id || m.Check.Kind != kind {
			t.Fatalf("checked = %+v, want id %d kind %s", m.Check, id, kind)
		}
		return *m.Check
	}
	get := func(path string) {
		t.Helper()
		resp, err := tcpClient().Get("http://" + w.tcpAddr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
	}
	if c := ask(1, ipc.CheckHealth); !c.OK || c.Error != "" {
		t.Errorf("healthy check = %+v", c)
	}
	if c := ask(2, ipc.CheckReadiness); c.OK || c.StatusCode != 503 || c.Body != "warming up" {
		t.Errorf("readiness {status:false, statusCode, body} = %+v", c)
	}
	get("/ready")
	if c := ask(3, ipc.CheckReadiness); !c.OK {
		t.Errorf("ready check = %+v", c)
	}
	// A passing check whose body is over what a control frame holds is
	// answered, with the body's start, not left unanswered (which took
	// the worker for one that does not answer).
	get("/huge")
	if c := ask(6, ipc.CheckReadiness); !c.OK || len(c.Body) != 128<<10 || strings.Trim(c.Body, "x") != "" {
		t.Errorf("a passing check with a 2 MiB body: ok %v, body of %d bytes", c.OK, len(c.Body))
	}
	get("/sick")
	if c := ask(4, ipc.CheckHealth); c.OK || c.Error != "" {
		t.Errorf("check returning false = %+v", c)
	}
	get("/throw")
	if c := ask(5, ipc.CheckHealth); c.OK || c.Error != "database unreachable" {
		t.Errorf("throwing check = %+v", c)
	}

	get("/signal")
	m := w.expect(ipc.TypeHealthSignals)
	if len(m.Signals) != 1 {
		t.Fatalf("signals = %s", m.Signals)
	}
	var sig map[string]any
	if err := json.Unmarshal(m.Signals[0], &sig); err != nil || sig["type"] != "queue" || sig["depth"] != 7.0 || sig["timestamp"] == nil {
		t.Errorf("signal = %s (%v)", m.Signals[0], err)
	}

	w.send(&ipc.Message{Type: ipc.TypeDrain, TimeoutMs: 2000})
	if c := w.event("closing"); c["closing"] != true {
		t.Errorf("closing event: platformatic.closing = %v", c["closing"])
	}
	w.event("stop")
	w.expect(ipc.TypeDrained)
}
