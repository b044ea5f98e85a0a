package main_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// TestKeptAliveClientsSpreadAfterScaleUp: clients kept alive on the one
// worker there was reach the worker a scale up adds, without a failed
// request: the first worker sheds their connections once the new one
// serves, and they connect again, to either (the Node preload's shed).
func TestKeptAliveClientsSpreadAfterScaleUp(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/burn"), "workers": 1}},
	})
	d := startWattd(t, dir, port, startOpts{})
	waitHTTP(t, d.url("/"), 20*time.Second)
	first := d.waitReady("web", 10*time.Second).Workers[0].PID

	clients := make([]*http.Client, 16)
	for i := range clients {
		clients[i] = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1}}
		t.Cleanup(clients[i].CloseIdleConnections)
	}
	pidOf := func(c *http.Client) int {
		t.Helper()
		resp, err := c.Get(d.url("/"))
		if err != nil {
			t.Fatalf("request on a kept-alive client: %v", err)
		}
		defer resp.Body.Close()
		var body struct{ PID int }
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return body.PID
	}
	for _, c := range clients {
		if pid := pidOf(c); pid != first {
			t.Fatalf("answered by %d with one worker, %d", pid, first)
		}
	}
	if out, err := d.ctl("scale", "web", "2"); err != nil {
		t.Fatalf("ctl scale web 2: %v\n%s", err, out)
	}
	added := d.app("web").Workers[1].PID
	onAdded := 0
	waitFor(t, 10*time.Second, "a kept-alive client to reach the added worker", func() bool {
		onAdded = 0
		for _, c := range clients {
			if pidOf(c) == added {
				onAdded++
			}
		}
		return onAdded > 0
	})
	t.Logf("%d of %d kept-alive clients on the added worker", onAdded, len(clients))
}
