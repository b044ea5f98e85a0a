package main_test

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor"
)

const masked = "[redacted]"

// TestCtlConfigAndEnv: `wattd ctl config` prints the resolved
// configuration (placeholders replaced, defaults filled in) with secret
// env values masked, and `wattd ctl env APP --worker N` prints exactly the
// environment that worker's process started with, API_KEY and
// DB_PASSWORD masked; an unknown app or worker is an error that names
// what exists.
func TestCtlConfigAndEnv(t *testing.T) {
	integration(t)
	port := freePort(t)
	cfg := map[string]any{
		"server":  map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"workers": 2,
		"env":     map[string]any{"STRIPE_SECRET": "sk-live-runtime-9", "REGION": "eu-west"},
		"applications": []any{map[string]any{
			"id": "web", "path": fixture("apps/probe"),
			"env": map[string]any{
				"API_KEY": "k-live-123", "DB_PASSWORD": "hunter2-pw", "GREETING": "hello",
				"PRIMARY_DB": "postgres://app:url-pw-77@db.internal/main", "KEYBOARD": "qwerty",
				// Values url.Parse rejects or reads as one URL, and
				// password names without PASSWORD in them.
				"REDIS_NODES": "redis://:rd-pw-1@h1:6379,redis://:rd-pw-2@h2:6379",
				"APP_CONFIG":  `{"db":"postgres://u:json-pw-3@h/db"}`,
				"DB_PASS":     "db-pass-4", "MYSQL_PWD": "mysql-pwd-5",
				// pwd as a JSON member: only the variable PWD is the
				// shell's working directory.
				"DB_CONFIG": `{"db":{"pwd":"json-pwd-8"}}`,
				// A key file in a variable of a neutral name.
				"GCP_SA": `{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\nsa-key-6\n-----END PRIVATE KEY-----\n", "client_email": "a@b"}`,
			},
		}},
	}
	dir := project(t, cfg)
	d := startWattd(t, dir, port, startOpts{})
	body := waitHTTP(t, d.url("/"), 30*time.Second)
	d.waitReady("web", 30*time.Second)
	secretValues := []string{"sk-live-runtime-9", "k-live-123", "hunter2-pw", "url-pw-77", "rd-pw-1", "rd-pw-2", "json-pw-3", "db-pass-4", "mysql-pwd-5", "sa-key-6", "json-pwd-8"}

	for _, args := range [][]string{{"config"}, {"config", "--json"}, {"--json", "config"}} {
		out, err := d.ctl(args...)
		if err != nil {
			t.Fatalf("ctl %v: %v\n%s", args, err, out)
		}
		for _, s := range secretValues {
			if strings.Contains(out, s) {
				t.Errorf("ctl %v leaks %q:\n%s", args, s, out)
			}
		}
		var cfg struct {
			Workers            int
			Env                map[string]string
			Server             struct{ Hostname string }
			StartTimeout       string
			StartupConcurrency int
			Applications       []struct {
				ID      string
				Workers int
				Path    string
				Env     map[string]string
			}
		}
		if err := json.Unmarshal([]byte(out), &cfg); err != nil {
			t.Fatalf("ctl %v printed no JSON: %v\n%s", args, err, out)
		}
		if !strings.Contains(out, strconv.Itoa(port)) {
			t.Errorf("ctl %v: the port placeholder's value %d is not in the configuration:\n%s", args, port, out)
		}
		if cfg.Workers != 2 || cfg.Server.Hostname != "127.0.0.1" || cfg.StartTimeout == "" || cfg.StartTimeout == "0s" || cfg.StartupConcurrency < 1 {
			t.Errorf("ctl %v: workers %d, hostname %q, startTimeout %q, startupConcurrency %d: want the resolved values", args, cfg.Workers, cfg.Server.Hostname, cfg.StartTimeout, cfg.StartupConcurrency)
		}
		if cfg.Env["REGION"] != "eu-west" || cfg.Env["STRIPE_SECRET"] != masked {
			t.Errorf("ctl %v: runtime env %v", args, cfg.Env)
		}
		if len(cfg.Applications) != 1 {
			t.Fatalf("ctl %v: applications %+v", args, cfg.Applications)
		}
		a := cfg.Applications[0]
		if a.ID != "web" || a.Workers != 2 || a.Path != fixture("apps/probe") {
			t.Errorf("ctl %v: application %+v", args, a)
		}
		want := map[string]string{"API_KEY": masked, "DB_PASSWORD": masked, "GREETING": "hello", "KEYBOARD": "qwerty",
			"REGION": "eu-west", "STRIPE_SECRET": masked, "PRIMARY_DB": "postgres://app:" + masked + "@db.internal/main",
			"GCP_SA": `{"type": "service_account", "private_key": "` + masked + `", "client_email": "a@b"}`}
		for k, v := range want {
			if a.Env[k] != v {
				t.Errorf("ctl %v: app env %s=%q, want %q", args, k, a.Env[k], v)
			}
		}
	}

	// The worker that answered tells what it started with; ctl env of the
	// same worker must say the same, masked.
	var got struct{ Start map[string]string }
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	worker := got.Start["WATTD_WORKER_ID"]
	out, err := d.ctl("env", "--worker", worker, "web")
	if err != nil {
		t.Fatalf("ctl env: %v\n%s", err, out)
	}
	for _, s := range secretValues {
		if strings.Contains(out, s) {
			t.Errorf("ctl env leaks %q:\n%s", s, out)
		}
	}
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("ctl env printed %q, want NAME=value lines", line)
		}
		env[k] = v
	}
	for k, v := range map[string]string{"API_KEY": masked, "DB_PASSWORD": masked, "STRIPE_SECRET": masked, "GREETING": "hello",
		"KEYBOARD": "qwerty", "WATTD_APP_ID": "web", "WATTD_WORKER_ID": worker, "PRIMARY_DB": "postgres://app:" + masked + "@db.internal/main"} {
		if env[k] != v {
			t.Errorf("ctl env: %s=%q, want %q", k, env[k], v)
		}
	}
	for k, v := range got.Start {
		shown, ok := env[k]
		switch {
		case !ok:
			t.Errorf("the worker has %s, ctl env does not show it", k)
		case shown != v && shown != masked && !strings.Contains(shown, masked):
			t.Errorf("ctl env: %s=%q, the worker has %q", k, shown, v)
		}
	}
	for k := range env {
		if _, ok := got.Start[k]; !ok {
			t.Errorf("ctl env shows %s, which the worker does not have", k)
		}
	}

	// Options may follow APP.
	out, err = d.ctl("env", "web", "--json", "-w", "1")
	if err != nil {
		t.Fatalf("ctl env web --json -w 1: %v\n%s", err, out)
	}
	before, err := d.ctl("env", "--json", "-w", "1", "web")
	if err != nil {
		t.Fatalf("ctl env --json: %v\n%s", err, out)
	}
	if out != before {
		t.Errorf("ctl env web --json -w 1 printed\n%s\nctl env --json -w 1 web printed\n%s", out, before)
	}
	var we supervisor.WorkerEnv
	if err := json.Unmarshal([]byte(out), &we); err != nil {
		t.Fatalf("ctl env --json: %v\n%s", err, out)
	}
	if we.App != "web" || we.Worker != 1 || we.PID != d.app("web").Workers[1].PID || len(we.Env) == 0 {
		t.Errorf("ctl env --json: %+v; want worker 1 with its pid %d", we, d.app("web").Workers[1].PID)
	}

	// inject, the other data command with its own parser, has --json too.
	out, err = d.ctl("inject", "web", "/status/201", "--json")
	var ir struct {
		Status  int
		Headers map[string][]string
		Body    string
	}
	if err != nil || json.Unmarshal([]byte(out), &ir) != nil || ir.Status != 201 || ir.Body != "status 201 from web\n" || len(ir.Headers) == 0 {
		t.Errorf("ctl inject --json: %v, %+v\n%s", err, ir, out)
	}
	if strings.Contains(out, "bodyEncoding") {
		t.Errorf("ctl inject --json of a text body: %s", out)
	}
	// A body that is not UTF-8 text comes whole, in base64.
	out, err = d.ctl("inject", "web", "/bytes", "--json")
	var br struct{ Body, BodyEncoding string }
	if err != nil || json.Unmarshal([]byte(out), &br) != nil || br.BodyEncoding != "base64" || br.Body != base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 0xff, 0xfe, 0x0a}) {
		t.Errorf("ctl inject --json of bytes: %v, %+v\n%s", err, br, out)
	}

	// Without APP, the runtime's environment: what every worker starts
	// from, without any application's env or a worker's own variables.
	out, err = d.ctl("env")
	if err != nil {
		t.Fatalf("ctl env: %v\n%s", err, out)
	}
	renv := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(line, "=")
		renv[k] = v
	}
	for k, v := range map[string]string{"REGION": "eu-west", "STRIPE_SECRET": masked, "PLT_ROOT": dir} {
		if renv[k] != v {
			t.Errorf("ctl env (the runtime's): %s=%q, want %q", k, renv[k], v)
		}
	}
	for _, k := range []string{"API_KEY", "GREETING", "WATTD_APP_ID", "WATTD_WORKER_ID", "PORT"} {
		if _, ok := renv[k]; ok {
			t.Errorf("ctl env (the runtime's) shows %s, which is an application's or a worker's", k)
		}
	}
	if renv["PATH"] != os.Getenv("PATH") {
		t.Errorf("ctl env (the runtime's): PATH=%q, want the inherited %q", renv["PATH"], os.Getenv("PATH"))
	}
	out, err = d.ctl("env", "--json")
	var re supervisor.RuntimeEnv
	if err != nil || json.Unmarshal([]byte(out), &re) != nil || re.PID != d.cmd.Process.Pid || len(re.Env) != len(renv) {
		t.Errorf("ctl env --json: %v, %+v; want wattd's pid %d and the %d variables\n%s", err, re, d.cmd.Process.Pid, len(renv), out)
	}
	if out, err = d.ctl("env", "-w", "1"); err == nil || !strings.Contains(out, "APP") {
		t.Errorf("ctl env -w 1 without APP: err %v, output %q; want a usage error", err, out)
	}

	out, err = d.ctl("env", "nope")
	if err == nil || !strings.Contains(out, `"nope"`) || !strings.Contains(out, "web") {
		t.Errorf("ctl env nope: err %v, output %q; want an error naming the known apps", err, out)
	}
	out, err = d.ctl("env", "--worker", "5", "web")
	if err == nil || !strings.Contains(out, "0, 1") {
		t.Errorf("ctl env --worker 5 web: err %v, output %q; want an error naming workers 0, 1", err, out)
	}

	// After a reload, both show what runs now.
	cfg["applications"].([]any)[0].(map[string]any)["env"].(map[string]any)["GREETING"] = "bonjour"
	writeJSON(t, filepath.Join(dir, "watt.json"), cfg)
	if out, err := d.ctl("reload"); err != nil {
		t.Fatalf("ctl reload: %v\n%s", err, out)
	}
	out, err = d.ctl("config")
	if err != nil || !strings.Contains(out, `"GREETING": "bonjour"`) || strings.Contains(out, `"hello"`) {
		t.Errorf("ctl config after a reload: %v; want GREETING=bonjour\n%s", err, out)
	}
	out, err = d.ctl("env", "web")
	if err != nil || !strings.Contains(out, "\nGREETING=bonjour\n") {
		t.Errorf("ctl env after a reload: %v; want GREETING=bonjour\n%s", err, out)
	}
}

// ctlIn runs `wattd ctl args…` from dir against the runtimes under runDir.
func ctlIn(dir, runDir string, args ...string) (string, error) {
	cmd := exec.Command(wattdBin, append([]string{"ctl"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "WATTD_RUNTIME_DIR="+runDir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestCtlRuntimeNames: runtimes are named (--name, or the project
// directory's name), `wattd ctl --name` addresses each, ctl list shows
// them, several without a choice is an error listing them, and a second
// runtime of a name already running refuses to start.
func TestCtlRuntimeNames(t *testing.T) {
	integration(t)
	shared, err := os.MkdirTemp("", "wrt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shared) })
	proj := func() string {
		return project(t, map[string]any{
			"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
			"applications": []any{map[string]any{"id": "web", "path": fixture("apps/probe")}},
		})
	}
	envs := []string{"WATTD_RUNTIME_DIR=" + shared}
	dirA, dirB := proj(), proj()
	a := startWattd(t, dirA, freePort(t), startOpts{env: envs, args: []string{"--name", "alpha"}})
	b := startWattd(t, dirB, freePort(t), startOpts{env: envs})
	waitHTTP(t, a.url("/"), 30*time.Second)
	waitHTTP(t, b.url("/"), 30*time.Second)
	nameB := filepath.Base(dirB)
	elsewhere := t.TempDir()

	// Both must be listed before the ambiguity can show.
	var list []struct {
		Name string
		PID  int
	}
	waitFor(t, 20*time.Second, "ctl list to show both runtimes", func() bool {
		out, err := ctlIn(elsewhere, shared, "list", "--json")
		if err != nil {
			t.Fatalf("ctl list --json: %v\n%s", err, out)
		}
		list = nil
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("ctl list --json: %v\n%s", err, out)
		}
		return len(list) == 2
	})
	names := map[string]int{}
	for _, e := range list {
		names[e.Name] = e.PID
	}
	if names["alpha"] != a.cmd.Process.Pid || names[nameB] != b.cmd.Process.Pid {
		t.Errorf("ctl list: %+v; want alpha (pid %d) and %s (pid %d)", list, a.cmd.Process.Pid, nameB, b.cmd.Process.Pid)
	}
	out, err := ctlIn(elsewhere, shared, "list")
	if err != nil || !strings.Contains(out, "alpha") || !strings.Contains(out, nameB) || !strings.Contains(out, "NAME") {
		t.Errorf("ctl list: %v\n%s", err, out)
	}

	out, err = ctlIn(elsewhere, shared, "status", "--json")
	if err == nil || !strings.Contains(out, "alpha") || !strings.Contains(out, nameB) || !strings.Contains(out, "--name") {
		t.Errorf("ctl status with two runtimes and no choice: err %v, output %q; want an error listing both and saying --name", err, out)
	}

	for _, c := range []struct {
		args []string
		pid  int
	}{
		{[]string{"--name", "alpha", "status", "--json"}, a.cmd.Process.Pid},
		{[]string{"status", "--json", "--name", nameB}, b.cmd.Process.Pid},
		{[]string{"--name=" + nameB, "status", "--json"}, b.cmd.Process.Pid},
	} {
		out, err := ctlIn(elsewhere, shared, c.args...)
		if err != nil {
			t.Fatalf("ctl %v: %v\n%s", c.args, err, out)
		}
		var st supervisor.RuntimeStatus
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("ctl %v: %v\n%s", c.args, err, out)
		}
		if st.PID != c.pid {
			t.Errorf("ctl %v reached pid %d, want %d", c.args, st.PID, c.pid)
		}
	}
	// The name also works for the commands that parse their own options.
	out, err = ctlIn(elsewhere, shared, "logs", "--name", "alpha", "-n", "5", "--json")
	if err != nil {
		t.Errorf("ctl logs --name alpha: %v\n%s", err, out)
	}

	out, err = ctlIn(elsewhere, shared, "--name", "gamma", "ps")
	if err == nil || !strings.Contains(out, `"gamma"`) || !strings.Contains(out, "alpha") || !strings.Contains(out, nameB) {
		t.Errorf("ctl --name gamma: err %v, output %q; want an error listing the running names", err, out)
	}

	c := startWattd(t, proj(), freePort(t), startOpts{env: envs, args: []string{"--name", "alpha"}})
	if code := c.wait(30 * time.Second); code == 0 {
		t.Errorf("a second runtime called alpha started (exit 0)")
	}
	if s := c.out.String(); !strings.Contains(s, `called "alpha" already runs`) || !strings.Contains(s, "--name") {
		t.Errorf("a second runtime called alpha: output %q; want it to say the name is taken and how to choose another", s)
	}
	out, err = ctlIn(elsewhere, shared, "--name", "alpha", "status", "--json")
	if err != nil || !strings.Contains(out, strconv.Itoa(a.cmd.Process.Pid)) {
		t.Errorf("after the refused start, ctl --name alpha: %v\n%s", err, out)
	}
}
