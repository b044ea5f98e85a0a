// A Go program traced through wattd: it makes a server span per request
// and a client span per mesh call with the SDK's ipctrace helpers, and
// hands them to wattd over the control channel; wattd exports them.
//
//	/            answers with the application id and pid
//	/chain?to=X  calls http://X.plt.local/leaf and answers with its body
//	/leaf        answers "leaf <app>"
//	/lie         sends wattd a spans message of broken spans, as a
//	             confused or hostile worker could
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/ipc/ipctrace"
	"github.com/wattd/wattd/mesh"
)

func main() {
	ls, err := ipc.Listeners()
	if err != nil {
		log.Fatalf("listeners: %v", err)
	}
	ctl, err := ipc.Dial()
	if err != nil {
		log.Fatalf("control channel: %v", err)
	}
	app := os.Getenv(ipc.EnvApp)
	tp := ipctrace.NewTracerProvider(ctl)
	client := &http.Client{
		Transport: ipctrace.Transport(tp, &mesh.Transport{Resolver: mesh.ResolverFunc(ctl.Mesh)}),
		Timeout:   10 * time.Second,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "gotrace %s %d tracing=%v\n", app, os.Getpid(), ipctrace.Enabled())
	})
	mux.HandleFunc("/leaf", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "leaf %s\n", app)
	})
	mux.HandleFunc("/chain", func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://"+r.URL.Query().Get("to")+".plt.local/leaf", nil)
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		io.Copy(w, resp.Body)
	})
	mux.HandleFunc("/lie", func(w http.ResponseWriter, r *http.Request) {
		good := map[string]any{"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
			"name": "GET /lie-valid", "kind": "server", "startMs": 1764672000123.5, "endMs": 1764672000124.25}
		bad := []any{
			map[string]any{"traceId": "00000000000000000000000000000000", "spanId": "b7ad6b7169203331", "name": "x", "kind": "server", "startMs": 1, "endMs": 2},
			map[string]any{"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "B7AD6B7169203331", "name": "x", "kind": "server", "startMs": 1, "endMs": 2},
			map[string]any{"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "x", "kind": "server", "startMs": 5, "endMs": 2},
			map[string]any{"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "x", "kind": "sideways", "startMs": 1, "endMs": 2},
			map[string]any{"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "x", "kind": "server", "startMs": "soon", "endMs": 2},
			map[string]any{"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "x", "kind": "server", "startMs": 1, "endMs": 2, "attributes": map[string]any{"nested": map[string]any{}}},
			"not a span",
		}
		spans, _ := json.Marshal(append(bad, good))
		if err := ctl.Send(&ipc.Message{Type: ipc.TypeSpans, Spans: spans}); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		// The spans member as something other than an array.
		if err := ctl.Send(&ipc.Message{Type: ipc.TypeSpans, Spans: json.RawMessage(`{"traceId":1}`)}); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "lied %d\n", os.Getpid())
	})
	var drain ipc.HTTPDrainer
	srv := &http.Server{Handler: drain.Handler(ipctrace.Handler(tp, mux))}
	for _, l := range ls {
		go srv.Serve(drain.Listener(l))
	}
	if err := ctl.Ready(); err != nil {
		log.Fatalf("ready: %v", err)
	}
	<-ctl.Drain
	if err := drain.Drain(context.Background(), ctl.DrainTimeout(), srv); err != nil {
		log.Printf("drain: %v", err)
	}
	// The last spans go before wattd is told the worker is done.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	tp.Shutdown(ctx)
	cancel()
	ctl.Drained()
}
