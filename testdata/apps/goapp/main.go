// Command goapp is a Go HTTP app for the go capability's tests. It does
// not import wattd: it listens on $PORT (on $HOST, default 127.0.0.1), as
// fronted programs do. / answers "go app <pid>", /slow after ?ms=
// milliseconds (in-flight work for graceful-stop tests), /exit exits with
// ?code= (default 1), /fatal ends it by log.Fatal (one stderr line, exit
// status 1), /panic panics in a goroutine (the process ends with the Go
// runtime's report). SIGTERM finishes the requests in flight, then exits.
package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		log.Fatal("PORT is not set")
	}
	host := os.Getenv("HOST")
	if host == "" {
		host = "127.0.0.1"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "go app %d\n", os.Getpid())
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil {
			ms = 1000
		}
		time.Sleep(time.Duration(ms) * time.Millisecond)
		fmt.Fprintf(w, "go app %d\n", os.Getpid())
	})
	mux.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.URL.Query().Get("code"))
		if err != nil {
			code = 1
		}
		fmt.Fprintf(w, "go app %d\n", os.Getpid())
		time.AfterFunc(10*time.Millisecond, func() { os.Exit(code) })
	})

	mux.HandleFunc("/fatal", func(w http.ResponseWriter, r *http.Request) {
		log.Fatal("cannot reach the database: connection refused")
	})

	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) {
		go func() { panic("boom from goapp") }()
		time.Sleep(time.Second)
	})

	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		// Shutdown lets requests in flight finish; wattd's grace period
		// bounds how long that may take.
		srv.Shutdown(context.Background())
	}()
	log.Printf("go app %d listening on %s", os.Getpid(), ln.Addr())
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		log.Fatal(err)
	}
	// Serve returns as soon as Shutdown starts; the process must live
	// until Shutdown has finished the requests in flight.
	<-done
}
