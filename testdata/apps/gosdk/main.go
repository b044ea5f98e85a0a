// A Go program written for wattd: it takes its sockets with the Go SDK
// (LISTEN_FDS), reports ready, drains on request with the SDK's
// HTTPDrainer, reports the Go runtime's figures with ReportStats, and calls
// another application over the mesh with the SDK's mesh table.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/mesh"
)

func main() {
	// HELLO_DELAY_MS holds the hello back, as a program that loads a lot
	// before it speaks the protocol (tests of workerProtocol).
	if ms, err := strconv.Atoi(os.Getenv("HELLO_DELAY_MS")); err == nil {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	ls, err := ipc.Listeners()
	if err != nil {
		log.Fatalf("listeners: %v", err)
	}
	ctl, err := ipc.Dial()
	if err != nil {
		log.Fatalf("control channel: %v", err)
	}
	client := &http.Client{Transport: &mesh.Transport{Resolver: mesh.ResolverFunc(ctl.Mesh)}, Timeout: 10 * time.Second}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "go sdk app %d\n", os.Getpid())
	})
	// /call?app=X asks another application through the mesh.
	mux.HandleFunc("/call", func(w http.ResponseWriter, r *http.Request) {
		resp, err := client.Get("http://" + r.URL.Query().Get("app") + ".plt.local/")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		io.Copy(w, resp.Body)
	})
	// The drainer answers with "Connection: close" during a drain and
	// leaves idle keep-alive connections a quiet period before closing
	// them, so a client sending its next request on one does not lose it.
	// It also sheds the connections when wattd asks, so that clients
	// spread over every worker again after one was replaced.
	var drain ipc.HTTPDrainer
	srv := &http.Server{Handler: drain.Handler(mux)}
	for _, l := range ls {
		go srv.Serve(drain.Listener(l))
	}
	ctl.OnShed(drain.Shed)
	// The Go runtime's figures and the open connections, for wattd's
	// metrics and health checks; the first report goes before ready.
	go ctl.ReportStats(context.Background(), ipc.StatsOptions{ActiveConns: drain.Open})
	if err := ctl.Ready(); err != nil {
		log.Fatalf("ready: %v", err)
	}
	<-ctl.Drain
	if err := drain.Drain(context.Background(), ctl.DrainTimeout(), srv); err != nil {
		log.Printf("drain: %v", err)
	}
	ctl.Drained()
}
