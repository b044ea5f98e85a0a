package node

import (
	"slices"
	"testing"

	"github.com/wattd/wattd/ipc"
)

// TestPreloadLoadsNoCryptoUnlessTracing: the preload runs before the app on
// every worker start, a crashed worker's replacement included, so it loads
// only what the features that are on need. node:crypto (tens of
// milliseconds to load) is needed by tracing and request ids alone; Node's
// undici (as much), behind fetch, by nothing until a mesh fetch.
func TestPreloadLoadsNoCryptoUnlessTracing(t *testing.T) {
	for _, c := range []struct {
		name string
		info ipc.AppInfo
		want bool
	}{
		{"both off", ipc.AppInfo{ApplicationID: "builtins"}, false},
		{"request ids", ipc.AppInfo{ApplicationID: "builtins", RequestID: &ipc.RequestIDInfo{Header: "x-request-id"}}, true},
		{"tracing", ipc.AppInfo{ApplicationID: "builtins", Tracing: &ipc.TracingInfo{}, RequestID: &ipc.RequestIDInfo{Header: "x-request-id"}}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := startWorker(t, workerOpts{app: "builtins", entrypoint: true,
				env: map[string]string{ipc.EnvAppInfo: writeInfo(t, c.info)}})
			w.handshake()
			ev := w.event("builtins")
			w.expect(ipc.TypeReady)
			var loaded []string
			for _, m := range ev["loaded"].([]any) {
				loaded = append(loaded, m.(string))
			}
			if got := slices.Contains(loaded, "crypto"); got != c.want {
				t.Errorf("node:crypto loaded before the app: %v, want %v (loaded: %v)", got, c.want, loaded)
			}
			if slices.Contains(loaded, "internal/deps/undici/undici") {
				t.Errorf("undici loaded before the app (loaded: %v)", loaded)
			}
		})
	}
}
