package main_test

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWattFactoryApps runs apps in Watt's application model through the
// real wattd: a Fastify app from create() as the entrypoint with two
// workers, an ES module whose build() returns an Express app on the mesh,
// and a background app (it exports hasServer = false). None calls listen()
// and none has a config of its own. On stop, the entrypoint's close()
// export and its Fastify onClose hooks run, and the background app's close().
func TestWattFactoryApps(t *testing.T) {
	integration(t)
	for _, n := range testNodes {
		node := nodePath(t, n)
		t.Run(nodeVersion(t, node), func(t *testing.T) {
			port := freePort(t)
			dir := project(t, map[string]any{
				"entrypoint": "web",
				"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
				"applications": []any{
					map[string]any{"id": "web", "path": fixture("apps/factories/fastify-create"), "workers": 2},
					map[string]any{"id": "api", "path": fixture("apps/factories/express-build")},
					map[string]any{"id": "jobs", "path": fixture("apps/factories/worker")},
				},
			})
			d := startWattd(t, dir, port, startOpts{env: []string{"WATTD_NODE=" + node}})
			body := waitHTTP(t, d.url("/"), 30*time.Second)
			var r struct{ App string }
			if json.Unmarshal([]byte(body), &r) != nil || r.App != "fastify-create" {
				t.Fatalf("GET / = %s", body)
			}
			d.waitReady("web", 10*time.Second)
			d.waitReady("api", 10*time.Second)
			d.waitReady("jobs", 10*time.Second)
			if out, err := d.ctl("inject", "api", "/"); err != nil || !strings.Contains(out, "express-build") {
				t.Fatalf("mesh to the build() app: %v\n%s", err, out)
			}
			// The background app stayed ready all along: not restarted for
			// never listening.
			if w := d.app("jobs").Workers; len(w) != 1 || w[0].Restarts != 0 {
				t.Fatalf("background app workers = %+v", w)
			}
			d.waitOutput("started the Fastify app it returned", 5*time.Second)

			d.signal(syscall.SIGTERM)
			if code := d.wait(30 * time.Second); code != 0 {
				t.Fatalf("exit code %d", code)
			}
			// web's two workers and jobs ran their close() export; web's
			// two Fastify apps ran their onClose hooks.
			out := d.out.String()
			for want, n := range map[string]int{"close-export": 3, "fastify-onClose": 2} {
				if c := strings.Count(out, want); c != n {
					t.Errorf("%q appears %d times in wattd's output, want %d", want, c, n)
				}
			}
		})
	}
}

// TestModuleWithoutServerSaysWhy: a module that neither listens nor exports
// a factory is reported with what it exports, not as a bare exit status 0.
func TestModuleWithoutServerSaysWhy(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"entrypoint": "web",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{
			map[string]any{"id": "web", "path": fixture("apps/factories/listener")},
			map[string]any{"id": "silent", "path": fixture("apps/factories/silent")},
		},
	})
	d := startWattd(t, dir, port, startOpts{})
	d.waitOutput("without having listened (it exports handler)", 30*time.Second)
}
