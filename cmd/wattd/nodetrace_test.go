package main_test

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TestNodeTracing runs two plain Node.js applications (testdata/apps/
// nodetrace, no OpenTelemetry of their own) under wattd with an OTLP/HTTP
// exporter, on every node in WATTD_TEST_NODES. A request entering "entry"
// with a traceparent and a request id, which calls "internal" over the mesh
// with fetch and then with http.get, reaches the receiver as one trace per
// request: entry's server span is the caller's child, its client span the
// server span's child and internal's server span the client span's child,
// each with its service name and application and worker attributes. The
// log lines of that request in both applications carry its reqId, traceId
// and spanId.
func TestNodeTracing(t *testing.T) {
	integration(t)
	for _, n := range testNodes {
		node := nodePath(t, n)
		t.Run(nodeVersion(t, node), func(t *testing.T) {
			rcv := otlpHTTPReceiver(t)
			dir := nodetraceProject(t, 2, rcv.telemetry("shop"))
			d := startWattd(t, dir, freePort(t), startOpts{env: []string{"WATTD_NODE=" + node}})
			waitHTTP(t, d.url("/"), 30*time.Second)
			d.waitReady("entry", 20*time.Second)
			d.waitReady("internal", 20*time.Second)

			for i, via := range []string{"fetch", "get"} {
				traceID := strings.Repeat("0", 31) + string(rune('1'+i))
				const callerSpan = "00f067aa0ba902b7"
				reqID := "e2e-" + via
				code, header, body, err := getWith(fresh, d.url("/chain?via="+via), map[string]string{
					"traceparent": "00-" + traceID + "-" + callerSpan + "-01", "x-request-id": reqID,
				})
				if err != nil {
					t.Fatal(err)
				}
				// Request ids come with tracing, and go on the response only
				// when logger.requestId asks for them.
				if code != 200 || body != "leaf internal" || header.Get("X-Request-Id") != "" {
					t.Fatalf("GET /chain?via=%s: %d %q, x-request-id %q", via, code, body, header.Get("X-Request-Id"))
				}

				server, client, leaf := chainSpans(t, rcv, traceID, callerSpan, "entry", "internal", via)
				if server.span.Name != "GET /chain" || client.span.Name != "GET http://internal.plt.local/leaf" || leaf.span.Name != "GET /leaf" {
					t.Errorf("%s names: %q, %q, %q", via, server.span.Name, client.span.Name, leaf.span.Name)
				}
				if server.attr("http.response.status_code") != int64(200) || client.attr("http.response.status_code") != int64(200) ||
					server.attr("url.path") != "/chain" || client.attr("url.full") != "http://internal.plt.local/leaf" {
					t.Errorf("%s attributes: server %v, client %v", via, server.span.Attributes, client.span.Attributes)
				}
				ps := d.ps()
				for _, c := range []struct {
					s       gotSpan
					app     string
					service string
				}{{server, "entry", "shop-entry"}, {client, "entry", "shop-entry"}, {leaf, "internal", "shop-internal"}} {
					r := c.s.res
					worker, ok := r["wattd.worker.id"].(int64)
					if !ok || r["service.name"] != c.service || r["wattd.application.id"] != c.app || r["process.pid"] != pidOf(ps, c.app, worker) {
						t.Errorf("%s span %q: resource %v; want service %s of app %s, pid of its worker", via, c.s.span.Name, r, c.service, c.app)
					}
				}
				order := []time.Time{server.start(), client.start(), leaf.start(), leaf.end(), client.end(), server.end()}
				for k := 1; k < len(order); k++ {
					// A server span ends when its response has closed, which in
					// the callee's process may come a moment after the caller
					// has read the whole response and ended its client span.
					slack := time.Duration(0)
					if k == 4 {
						slack = 50 * time.Millisecond
					}
					if order[k].Add(slack).Before(order[k-1]) {
						t.Errorf("%s: times out of order at %d: %v", via, k, order)
					}
				}

				// The request's log lines, in both applications.
				var chain, leafLine map[string]any
				waitFor(t, 10*time.Second, "the "+via+" request's log lines", func() bool {
					for _, e := range logEntries(d.out.String(), "chain done") {
						if e["reqId"] == reqID {
							chain = e
						}
					}
					for _, e := range logEntries(d.out.String(), "leaf") {
						if e["reqId"] == reqID {
							leafLine = e
						}
					}
					return chain != nil && leafLine != nil
				})
				if chain["name"] != "entry" || chain["traceId"] != traceID || chain["spanId"] != server.id() || chain["fixture"] != "nodetrace" {
					t.Errorf("%s: entry's line %v; want traceId %s spanId %s", via, chain, traceID, server.id())
				}
				if leafLine["name"] != "internal" || leafLine["traceId"] != traceID || leafLine["spanId"] != leaf.id() {
					t.Errorf("%s: internal's line %v; want traceId %s spanId %s", via, leafLine, traceID, leaf.id())
				}
			}
		})
	}
}

// TestServerSpansOnOneConnection: requests that share a connection each
// get their own server span, the case where the preload keeps a request's
// context on the socket: two pipelined in one write (the first answered
// after 200 ms, the second queued behind it), then one more on the same
// connection. Each carries its own trace id; each trace must hold exactly
// one span, named after its own path.
func TestServerSpansOnOneConnection(t *testing.T) {
	integration(t)
	rcv := otlpHTTPReceiver(t)
	dir := project(t, map[string]any{
		"entrypoint":   "web",
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"telemetry":    rcv.telemetry("pipe"),
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/plain")}},
	})
	port := freePort(t)
	d := startWattd(t, dir, port, startOpts{})
	d.waitReady("web", 30*time.Second)
	c := dialOne(t, port)
	trace := func(i int) string { return fmt.Sprintf("%031x%d", 0xabc, i) }
	req := func(path string, i int) string {
		return "GET " + path + " HTTP/1.1\r\nHost: x\r\ntraceparent: 00-" + trace(i) + "-00f067aa0ba902b7-01\r\n\r\n"
	}
	c.send(req("/slow?ms=200", 1) + req("/first", 2))
	c.read(2)
	c.send(req("/second", 3))
	c.read(1)
	// A last request, whose span the worker sends after every span of the
	// three: once it is in, a doubled span would be too.
	c.send(req("/last", 4))
	c.read(1)
	waitFor(t, 20*time.Second, "the last request's span", func() bool { return len(rcv.trace(trace(4))) > 0 })

	want := map[int]string{1: "GET /slow", 2: "GET /first", 3: "GET /second"}
	for i, name := range want {
		spans := rcv.trace(trace(i))
		if len(spans) != 1 || spans[0].span.Name != name {
			var names []string
			for _, s := range spans {
				names = append(names, s.span.Name)
			}
			t.Errorf("trace %d: spans %q, want one %q", i, names, name)
		}
	}
}

// TestTracingSampler: OTEL_TRACES_SAMPLER in wattd's environment reaches
// the workers of both languages. Under traceidratio (not parent-based:
// each application decides for itself), a Node.js entry app calling a Go
// app over the mesh records every span of a trace or none, the trace ids
// kept being exactly those OpenTelemetry's Go SDK keeps; a trace left out
// still reaches the callee with its ids and the sampled flag off. A value
// wattd cannot apply stops it at start, naming the variable.
func TestTracingSampler(t *testing.T) {
	integration(t)
	rcv := otlpHTTPReceiver(t)
	dir := project(t, map[string]any{
		"entrypoint": "entry",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"telemetry":  rcv.telemetry("shop"),
		"applications": []any{
			map[string]any{"id": "entry", "path": fixture("apps/nodetrace")},
			map[string]any{"id": "internal", "path": buildGotrace(t)},
		},
	})
	const ratio = 0.5
	d := startWattd(t, dir, freePort(t), startOpts{env: []string{"OTEL_TRACES_SAMPLER=traceidratio", "OTEL_TRACES_SAMPLER_ARG=0.5"}})
	waitHTTP(t, d.url("/"), 30*time.Second)
	d.waitReady("internal", 20*time.Second)

	goSampler := sdktrace.TraceIDRatioBased(ratio)
	goKeeps := func(id trace.TraceID) bool {
		return goSampler.ShouldSample(sdktrace.SamplingParameters{TraceID: id}).Decision == sdktrace.RecordAndSample
	}
	chain := func(id trace.TraceID, flag string) {
		t.Helper()
		code, _, body, err := getWith(fresh, d.url("/chain?via=get"), map[string]string{"traceparent": "00-" + id.String() + "-00f067aa0ba902b7-" + flag})
		if err != nil {
			t.Fatal(err)
		}
		if code != 200 || body != "leaf internal\n" {
			t.Fatalf("GET /chain: %d %q", code, body)
		}
	}
	var ids []trace.TraceID
	kept := 0
	for i := range 24 {
		var id trace.TraceID
		rand.Read(id[:])
		ids = append(ids, id)
		if goKeeps(id) {
			kept++
		}
		chain(id, []string{"00", "01"}[i%2]) // the caller's flag does not count
	}
	if kept == 0 || kept == len(ids) {
		t.Fatalf("%d of %d random ids kept at %v", kept, len(ids), ratio)
	}
	var last trace.TraceID
	for rand.Read(last[:]); !goKeeps(last); rand.Read(last[:]) {
	}
	chain(last, "00")
	waitFor(t, 20*time.Second, "the last trace's 3 spans", func() bool { return len(rcv.trace(last.String())) == 3 })
	for _, id := range ids {
		n, want := len(rcv.trace(id.String())), 0
		if goKeeps(id) {
			want = 3
		}
		if n != want {
			t.Errorf("trace %s: %d spans at the receiver, want %d", id, n, want)
		}
	}
	// None of another trace (but waitHTTP's GET /, which the sampler may
	// have kept): the callee of a trace left out got its ids.
	rcv.mu.Lock()
	total := 0
	for _, s := range rcv.spans {
		if s.span.Name != "GET /" {
			total++
		}
	}
	rcv.mu.Unlock()
	if total != 3*(kept+1) {
		t.Errorf("%d spans at the receiver, want %d: 3 for each trace kept", total, 3*(kept+1))
	}

	// An unknown sampler: wattd does not start.
	cmd := exec.Command(wattdBin, "start", dir)
	cmd.Env = append(os.Environ(), "WATTD_RUNTIME_DIR="+t.TempDir(), "OTEL_TRACES_SAMPLER=ratio")
	out, err := cmd.CombinedOutput()
	if want := filepath.Join(dir, "watt.json") + `:17: /telemetry: OTEL_TRACES_SAMPLER="ratio": expected always_on,`; err == nil || !strings.Contains(string(out), want) {
		t.Errorf("wattd with OTEL_TRACES_SAMPLER=ratio: %v, output lacks %q:\n%s", err, want, out)
	}
}

// TestTracingExample runs testdata/examples/tracing as its README says and
// checks the trace it describes on wattd's standard output (the console
// exporter): the request's server span, the app's own "load order" under
// it with its attribute and event, the mesh call under that, and stock's
// server span under the call; and the app's log line in that span.
func TestTracingExample(t *testing.T) {
	integration(t)
	d := startWattd(t, fixture("examples/tracing"), freePort(t), startOpts{})
	waitHTTP(t, d.url("/order/42"), 30*time.Second)
	const traceID = "7bf92f3577b34da6a3ce929d0e0e4736"
	code, _, body, err := getWith(fresh, d.url("/order/42"), map[string]string{"traceparent": "00-" + traceID + "-00f067aa0ba902b7-01"})
	if err != nil || code != 200 || body != `{"order":"42","stock":{"item":"42","available":6}}` {
		t.Fatalf("GET /order/42: %d %q %v", code, body, err)
	}
	// stdouttrace's form of a span.
	type span struct {
		Name        string
		SpanContext struct{ TraceID, SpanID string }
		Parent      struct{ SpanID string }
		Attributes  []struct{ Key string }
		Events      []struct{ Name string }
	}
	byName := map[string]span{}
	waitFor(t, 20*time.Second, "the trace's 4 spans on stdout", func() bool {
		for _, line := range strings.Split(d.out.String(), "\n") {
			var s span
			if json.Unmarshal([]byte(line), &s) == nil && s.SpanContext.TraceID == traceID {
				byName[s.Name] = s
			}
		}
		return len(byName) == 4
	})
	server, own := byName["GET /order/42"], byName["load order"]
	call, leaf := byName["GET http://stock.plt.local/items/42"], byName["GET /items/42"]
	if server.Parent.SpanID != "00f067aa0ba902b7" || own.Parent.SpanID != server.SpanContext.SpanID ||
		call.Parent.SpanID != own.SpanContext.SpanID || leaf.Parent.SpanID != call.SpanContext.SpanID {
		t.Errorf("the spans do not nest as the README draws them: %+v", byName)
	}
	if len(own.Attributes) != 1 || own.Attributes[0].Key != "order.id" || len(own.Events) != 1 || own.Events[0].Name != "stock checked" {
		t.Errorf("load order: attributes %+v, events %+v", own.Attributes, own.Events)
	}
	var line map[string]any
	for _, e := range logEntries(d.out.String(), "order loaded") {
		if e["traceId"] == traceID {
			line = e
		}
	}
	if line == nil || line["spanId"] != own.SpanContext.SpanID {
		t.Errorf("the order loaded line %v does not carry the app span's id %s", line, own.SpanContext.SpanID)
	}
}

// nodetraceProject is an entry application calling an internal one over
// the mesh, both the traced Node.js fixture, with the given telemetry key;
// the entry has entryWorkers workers (0: the default), and extra keys are
// added to the watt.json as they are.
func nodetraceProject(t *testing.T, entryWorkers int, telemetry map[string]any, extra ...map[string]any) string {
	entry := map[string]any{"id": "entry", "path": fixture("apps/nodetrace")}
	if entryWorkers > 0 {
		entry["workers"] = entryWorkers
	}
	cfg := map[string]any{
		"entrypoint": "entry",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"telemetry":  telemetry,
		"applications": []any{
			entry,
			map[string]any{"id": "internal", "path": fixture("apps/nodetrace")},
		},
	}
	for _, e := range extra {
		maps.Copy(cfg, e)
	}
	return project(t, cfg)
}
