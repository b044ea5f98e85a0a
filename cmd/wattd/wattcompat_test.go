package main_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor"
)

// startEnv fetches what the probe fixture's worker was started with.
func startEnv(t *testing.T, d *daemon) map[string]string {
	t.Helper()
	body := waitHTTP(t, d.url("/"), 20*time.Second)
	var got struct{ Start map[string]string }
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return got.Start
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWattEnvironment: wattd start gives workers NODE_ENV=production
// (unless set) and Watt's PLT_ENVIRONMENT, PLT_DEV and PLT_ROOT (the
// configuration's directory, over an inherited value); a .env only gives
// defaults, never overriding the process environment.
func TestWattEnvironment(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/probe")}},
	})
	writeFiles(t, dir, map[string]string{".env": "FROM_DOTENV=file\nSHADOWED=file\n"})
	d := startWattd(t, dir, port, startOpts{env: []string{"SHADOWED=process", "PLT_ROOT=/elsewhere"}})
	env := startEnv(t, d)
	want := map[string]string{"PLT_ENVIRONMENT": "production", "PLT_DEV": "false", "FROM_DOTENV": "file", "SHADOWED": "process",
		"PLT_ROOT": dir}
	if os.Getenv("NODE_ENV") == "" {
		want["NODE_ENV"] = "production"
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("worker sees %s=%q, want %q", k, env[k], v)
		}
	}
}

// TestSingleApplicationFolder: a folder whose watt.yaml is one
// @platformatic/node application runs as Watt runs it: alone, as the
// entrypoint, with its package name (scope dropped) as id.
func TestSingleApplicationFolder(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := t.TempDir()
	probe, err := os.ReadFile(fixture("apps/probe/index.js"))
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{
		"package.json": `{"name": "@acme/shop", "main": "server.js"}`,
		"server.js":    string(probe),
		"watt.yaml": "$schema: https://schemas.platformatic.dev/@platformatic/node/3.0.0.json\n" +
			"server:\n  hostname: 127.0.0.1\n  port: {PLT_SERVER_PORT}\n" +
			"node:\n  main: server.js\n",
	})
	d := startWattd(t, dir, port, startOpts{})
	env := startEnv(t, d)
	if env["WATTD_APP_ID"] != "shop" || env["WATTD_ENTRYPOINT"] != "1" {
		t.Errorf("worker is app %q entrypoint %q, want shop and 1", env["WATTD_APP_ID"], env["WATTD_ENTRYPOINT"])
	}
}

// TestUnsupportedCapability: an application whose own config names a Watt
// capability wattd does not provide stops wattd before anything starts,
// with one error naming the capability, the application and the file.
func TestUnsupportedCapability(t *testing.T) {
	integration(t)
	dir := project(t, map[string]any{
		"entrypoint":   "api",
		"applications": []any{map[string]any{"id": "api", "path": fixture("apps/probe")}, map[string]any{"id": "gw", "path": "gw"}},
	})
	writeFiles(t, dir, map[string]string{
		"gw/platformatic.json": `{"$schema": "https://schemas.platformatic.dev/@platformatic/gateway/3.67.0.json", "gateway": {"applications": []}}`,
	})
	cmd := exec.Command(wattdBin, "start", dir)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("exit %v, want status 2; output:\n%s", err, out)
	}
	want := filepath.Join(dir, "gw/platformatic.json") + `:1: /$schema: application "gw" uses the Watt capability @platformatic/gateway, which wattd does not provide`
	if !strings.Contains(string(out), want) || strings.Count(string(out), "\n") != 1 {
		t.Errorf("output:\n%s\nwant one line with:\n%s", out, want)
	}
}

// TestEnvFileOption: wattd start -e FILE, as wattpm start --env: FILE,
// relative to the project directory, stands in for the project's .env; a
// FILE that does not exist stops wattd with status 2, naming it.
func TestEnvFileOption(t *testing.T) {
	integration(t)
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/probe"), "env": map[string]any{"X": "{WATTD_TEST_FROM_FILE}"}}},
	})
	writeFiles(t, dir, map[string]string{
		".env":      "WATTD_TEST_FROM_FILE=dotenv\nWATTD_TEST_ONLY_DOTENV=1\n",
		".env.prod": "WATTD_TEST_FROM_FILE=prod\n",
	})
	d := startWattd(t, dir, freePort(t), startOpts{args: []string{"-e", ".env.prod"}})
	env := startEnv(t, d)
	if env["X"] != "prod" || env["WATTD_TEST_ONLY_DOTENV"] != "" {
		t.Errorf("X=%q WATTD_TEST_ONLY_DOTENV=%q; want the value of .env.prod and nothing of .env", env["X"], env["WATTD_TEST_ONLY_DOTENV"])
	}
	out, code := runCLI(t, "", []string{"WATTD_RUNTIME_DIR=" + t.TempDir()}, "start", "--env", "missing.env", dir)
	if code != 2 {
		t.Fatalf("exit status %d, want 2; output:\n%s", code, out)
	}
	if want := filepath.Join(dir, "missing.env") + ": no such env file (given with --env)"; !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
}

// TestInspectOption: wattd start --inspect, as wattpm's: every Node.js
// worker's inspector listens on a port of its own above --inspect-address,
// and that address lists them all (/json/list, titled "<app>:<worker>",
// each entry's debugger URL on its worker's port; /json/version), the list
// following a replaced worker to its new port.
func TestInspectOption(t *testing.T) {
	integration(t)
	base := freePort(t)
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/probe"), "workers": 2}},
	})
	d := startWattd(t, dir, freePort(t), startOpts{args: []string{"--inspect", "--inspect-address", "127.0.0.1:" + strconv.Itoa(base)}})
	waitHTTP(t, d.url("/"), 30*time.Second)
	listURL := fmt.Sprintf("http://127.0.0.1:%d/json/list", base)
	type target struct{ Title, WebSocketDebuggerUrl string }
	targets := func() map[string]string {
		_, body, err := get(fresh, listURL)
		var l []target
		if err != nil || json.Unmarshal([]byte(body), &l) != nil {
			return nil
		}
		out := map[string]string{}
		for _, e := range l {
			out[e.Title] = e.WebSocketDebuggerUrl
		}
		return out
	}
	var got map[string]string
	waitFor(t, 20*time.Second, "both workers in the inspector list", func() bool {
		got = targets()
		return len(got) == 2 && got["web:0"] != "" && got["web:1"] != ""
	})
	workers := d.waitReady("web", 10*time.Second).Workers
	for _, w := range workers {
		want := fmt.Sprintf("ws://127.0.0.1:%d/", w.InspectPort)
		if w.InspectPort <= base || w.InspectPort > base+supervisor.InspectSpan || !strings.HasPrefix(got["web:"+strconv.Itoa(w.Index)], want) {
			t.Fatalf("worker %d: inspector port %d, listed %q", w.Index, w.InspectPort, got["web:"+strconv.Itoa(w.Index)])
		}
	}
	if _, body, err := get(fresh, fmt.Sprintf("http://127.0.0.1:%d/json/version", base)); err != nil || !strings.Contains(body, `"Browser":"node.js/`) {
		t.Fatalf("/json/version: %v %s", err, body)
	}
	// A replaced worker has a new port, and the list follows it.
	old := workers[0]
	syscall.Kill(old.PID, syscall.SIGKILL)
	waitFor(t, 20*time.Second, "the replacement in the inspector list", func() bool {
		got = targets()
		return got["web:0"] != "" && !strings.HasPrefix(got["web:0"], fmt.Sprintf("ws://127.0.0.1:%d/", old.InspectPort))
	})
	if out, code := runCLI(t, "", nil, "start", "--inspect-address", "127.0.0.1:9", dir); code == 0 || !strings.Contains(out, "--inspect-address needs --inspect") {
		t.Fatalf("--inspect-address alone: status %d\n%s", code, out)
	}
}

// TestStrictEnvOption: an unset placeholder is replaced by "" with a
// warning by default, as Watt does; --strict-env and WATTD_STRICT_ENV=1
// make it an error that stops wattd before anything starts.
func TestStrictEnvOption(t *testing.T) {
	integration(t)
	dir := project(t, map[string]any{
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/plain"), "env": map[string]any{"X": "{WATTD_TEST_SURELY_UNSET}"}}},
	})
	for _, tc := range []struct {
		name string
		args []string
		env  []string
	}{
		{"flag", []string{"start", "--strict-env", dir}, nil},
		{"variable", []string{"start", dir}, []string{"WATTD_STRICT_ENV=1"}},
		{"build flag", []string{"build", "--strict-env", dir}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(wattdBin, tc.args...)
			cmd.Env = append(append(os.Environ(), "WATTD_RUNTIME_DIR="+t.TempDir()), tc.env...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit %v, want status 2; output:\n%s", err, out)
			}
			if want := `/applications/0/env/X: environment variable "WATTD_TEST_SURELY_UNSET" is not set`; !strings.Contains(string(out), want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		})
	}
	t.Run("default", func(t *testing.T) {
		port := freePort(t)
		writeJSON(t, filepath.Join(dir, "watt.json"), map[string]any{
			"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
			"applications": []any{map[string]any{"id": "web", "path": fixture("apps/probe"), "env": map[string]any{"X": "<{WATTD_TEST_SURELY_UNSET}>"}}},
		})
		d := startWattd(t, dir, port, startOpts{})
		if env := startEnv(t, d); env["X"] != "<>" {
			t.Errorf("X=%q, want <>", env["X"])
		}
		d.waitOutput(`WATTD_TEST_SURELY_UNSET\" is not set; using an empty string`, 10*time.Second)
	})
}
