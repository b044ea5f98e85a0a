package main_test

import (
	"encoding/json"
	"testing"
	"time"
)

// TestWorkerEnvironment: of wattd's own WATTD_* variables, workers get
// only the documented ones (WATTD_STATS_INTERVAL_MS, WATTD_NODE,
// WATTD_GO); WATTD_RUNTIME_DIR, WATTD_LOG_FORMAT and any other WATTD_*
// stay with wattd, while ordinary variables, the config's env and the
// per-worker protocol variables arrive.
func TestWorkerEnvironment(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"server": map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{
			"id": "web", "path": fixture("apps/probe"),
			"env": map[string]any{"FROM_CONFIG": "yes", "WATTD_FROM_CONFIG": "kept"},
		}},
	})
	node := nodePath(t, testNodes[0])
	d := startWattd(t, dir, port, startOpts{env: []string{
		"WATTD_FOO=bar",
		"WATTD_STATS_INTERVAL_MS=700",
		"WATTD_NODE=" + node,
		"WATTD_GO=/usr/bin/false-go",
		"WATTD_APP_ID=spoofed",
		"PLAIN_VAR=plain",
	}})
	body := waitHTTP(t, d.url("/"), 20*time.Second)
	var got struct{ Start map[string]string }
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	env := got.Start
	want := map[string]string{
		"WATTD_STATS_INTERVAL_MS": "700",
		"WATTD_NODE":              node,
		"WATTD_GO":                "/usr/bin/false-go",
		"PLAIN_VAR":               "plain",
		"FROM_CONFIG":             "yes",
		"WATTD_FROM_CONFIG":       "kept", // the config's env is the operator's word
		"WATTD_APP_ID":            "web",  // set per worker, not inherited
		"WATTD_WORKER_ID":         "0",
		"WATTD_ENTRYPOINT":        "1",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("worker sees %s=%q, want %q", k, env[k], v)
		}
	}
	for _, k := range []string{"WATTD_CONTROL_FD", "WATTD_PROTOCOL", "WATTD_MESH_DIR", "WATTD_MESH_PROXY", "WATTD_APP_INFO", "LISTEN_FDS", "LISTEN_PID"} {
		if _, ok := env[k]; !ok {
			t.Errorf("worker lacks %s", k)
		}
	}
	for _, k := range []string{"WATTD_FOO", "WATTD_RUNTIME_DIR", "WATTD_LOG_FORMAT"} {
		if v, ok := env[k]; ok {
			t.Errorf("wattd's own %s=%q reached the worker", k, v)
		}
	}
}
