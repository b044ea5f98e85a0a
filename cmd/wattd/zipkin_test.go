package main_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openzipkin/zipkin-go/model"
)

// zipkinCollector is a Zipkin server's span API (POST /api/v2/spans, a
// JSON list), decoding with Zipkin's own span model.
type zipkinCollector struct {
	mu    sync.Mutex
	spans []model.SpanModel
	bad   []string
}

func (z *zipkinCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var spans []model.SpanModel
	body, _ := io.ReadAll(r.Body)
	err := json.Unmarshal(body, &spans)
	z.mu.Lock()
	defer z.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/api/v2/spans" || err != nil {
		z.bad = append(z.bad, r.Method+" "+r.URL.Path+": "+string(body))
		http.Error(w, "bad span post", http.StatusBadRequest)
		return
	}
	z.spans = append(z.spans, spans...)
	w.WriteHeader(http.StatusAccepted)
}

// trace is the spans received of one trace, by span id.
func (z *zipkinCollector) trace(id string) (map[string]model.SpanModel, []string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	out := map[string]model.SpanModel{}
	for _, s := range z.spans {
		if s.TraceID.String() == id {
			out[s.ID.String()] = s
		}
	}
	return out, append([]string(nil), z.bad...)
}

// TestTracingZipkin runs Watt's zipkin exporter configuration: a request
// through an entry Node app that calls an internal one on the mesh, inside
// a span of its own (globalThis.platformatic.tracerProvider), reaches a
// Zipkin collector as one trace of four spans, each under its
// application's service, parented as the calls ran, with the mesh call's
// remote service named.
func TestTracingZipkin(t *testing.T) {
	integration(t)
	zc := &zipkinCollector{}
	srv := httptest.NewServer(zc)
	defer srv.Close()
	dir := nodetraceProject(t, 0, map[string]any{
		"applicationName": "shop",
		"exporter":        map[string]any{"type": "zipkin", "options": map[string]any{"url": srv.URL + "/api/v2/spans"}},
	})
	d := startWattd(t, dir, freePort(t), startOpts{})
	waitHTTP(t, d.url("/"), 30*time.Second)
	d.waitReady("internal", 20*time.Second)

	const traceID, callerSpan = "5bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	code, _, body, err := getWith(fresh, d.url("/chain?via=fetch&own=1"), map[string]string{"traceparent": "00-" + traceID + "-" + callerSpan + "-01"})
	if err != nil {
		t.Fatal(err)
	}
	if code != 200 || body != "leaf internal" {
		t.Fatalf("GET /chain: %d %q", code, body)
	}
	var spans map[string]model.SpanModel
	waitFor(t, 20*time.Second, "4 spans of the trace at the collector", func() bool {
		var bad []string
		spans, bad = zc.trace(traceID)
		if len(bad) > 0 {
			t.Fatalf("the collector refused: %q", bad)
		}
		return len(spans) >= 4
	})
	var server, own, client, leaf model.SpanModel
	for _, s := range spans {
		switch {
		case s.Kind == model.Server && s.ParentID != nil && s.ParentID.String() == callerSpan:
			server = s
		case s.Kind == model.Client:
			client = s
		case s.Kind == model.Server:
			leaf = s
		case s.Name == "fetch leaf":
			own = s
		}
	}
	if len(spans) != 4 || server.ID == 0 || own.ID == 0 || client.ID == 0 || leaf.ID == 0 {
		t.Fatalf("want the entry's server span under the caller, its own span, its client span and the internal app's server span; got %+v", spans)
	}
	if own.ParentID == nil || *own.ParentID != server.ID || *client.ParentID != own.ID || leaf.ParentID == nil || *leaf.ParentID != client.ID {
		t.Errorf("parents: own's %v (server %v), client's %v (own %v), leaf's %v (client %v)", own.ParentID, server.ID, client.ParentID, own.ID, leaf.ParentID, client.ID)
	}
	if own.Kind != model.Undetermined || own.Tags["leaf.url"] != "http://internal.plt.local/leaf" || own.LocalEndpoint == nil || own.LocalEndpoint.ServiceName != "shop-entry" {
		t.Errorf("the app's own span: %+v", own)
	}
	if len(own.Annotations) != 1 || own.Annotations[0].Value != `{"leaf answered":{"bytes":13}}` ||
		own.Annotations[0].Timestamp.Before(client.Timestamp) || own.Annotations[0].Timestamp.After(own.Timestamp.Add(own.Duration)) {
		t.Errorf("the app span's event as a Zipkin annotation: %+v", own.Annotations)
	}
	// Zipkin lower-cases names and services.
	if server.Name != "get /chain" || leaf.Name != "get /leaf" || client.Name != "get http://internal.plt.local/leaf" {
		t.Errorf("names %q, %q, %q", server.Name, client.Name, leaf.Name)
	}
	for _, c := range []struct {
		s       model.SpanModel
		service string
		app     string
	}{{server, "shop-entry", "entry"}, {client, "shop-entry", "entry"}, {leaf, "shop-internal", "internal"}} {
		if c.s.LocalEndpoint == nil || c.s.LocalEndpoint.ServiceName != c.service || c.s.Tags["wattd.application.id"] != c.app {
			t.Errorf("span %q: local endpoint %+v, tags %v; want service %s of app %s", c.s.Name, c.s.LocalEndpoint, c.s.Tags, c.service, c.app)
		}
	}
	if client.RemoteEndpoint == nil || client.RemoteEndpoint.ServiceName != "shop-internal" {
		t.Errorf("mesh call's remote endpoint %+v, want service shop-internal", client.RemoteEndpoint)
	}
	if server.Tags["http.response.status_code"] != "200" || server.Tags["url.path"] != "/chain" || server.Tags["otel.status_code"] != "" {
		t.Errorf("server span tags %v", server.Tags)
	}
	// Times nest as the calls ran.
	if server.Timestamp.After(client.Timestamp) || client.Timestamp.After(leaf.Timestamp) ||
		leaf.Timestamp.Add(leaf.Duration).After(client.Timestamp.Add(client.Duration).Add(time.Microsecond)) ||
		server.Duration <= 0 {
		t.Errorf("times: server %v+%v, client %v+%v, leaf %v+%v", server.Timestamp, server.Duration, client.Timestamp, client.Duration, leaf.Timestamp, leaf.Duration)
	}
	if out := d.out.String(); strings.Contains(out, "could not export spans") {
		t.Errorf("export errors in wattd's log:\n%s", out)
	}
}
