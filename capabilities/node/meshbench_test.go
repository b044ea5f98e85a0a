package node

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wattd/wattd/ipc"
)

// TestMeshBenchmark compares an app that fetches from another app once per
// request over the mesh (Unix socket, routed by the preload) with the same
// app using plain fetch over loopback TCP. It only runs when
// WATTD_MESH_BENCH is set (seconds per route in WATTD_MESH_BENCH_SECONDS,
// default 10; concurrency in WATTD_MESH_BENCH_CONNS, default 32):
//
//	WATTD_MESH_BENCH=1 go test -run TestMeshBenchmark -v ./capabilities/node/
func TestMeshBenchmark(t *testing.T) {
	if os.Getenv("WATTD_MESH_BENCH") == "" {
		t.Skip("set WATTD_MESH_BENCH=1 to run the mesh benchmark")
	}
	secs, _ := strconv.Atoi(os.Getenv("WATTD_MESH_BENCH_SECONDS"))
	if secs <= 0 {
		secs = 10
	}
	conns, _ := strconv.Atoi(os.Getenv("WATTD_MESH_BENCH_CONNS"))
	if conns <= 0 {
		conns = 32
	}
	onEveryNode(t, func(t *testing.T) {
		benchMesh(t, time.Duration(secs)*time.Second, conns)
	})
}

func benchMesh(t *testing.T, d time.Duration, conns int) {
	// The upstream app: one Go server on a Unix socket (the mesh) and on
	// loopback TCP, the same handler for both.
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from api")
	})
	sock := filepath.Join(meshDir(t), "api-0.sock")
	uln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler}
	go srv.Serve(uln)
	go srv.Serve(tln)
	defer srv.Close()

	w := startWorker(t, workerOpts{app: "meshbench", entrypoint: true,
		env: map[string]string{"BENCH_TCP_URL": "http://" + tln.Addr().String() + "/"}})
	w.handshake()
	w.send(&ipc.Message{Type: ipc.TypeMesh, Mesh: &ipc.MeshTable{Apps: map[string]ipc.MeshApp{
		"api": {Endpoints: []string{sock}, State: "running"},
	}}})
	w.expect(ipc.TypeReady)
	base := "http://" + w.tcpAddr

	routes := []string{"/none", "/tcp", "/mesh", "/mesh-http"}
	// Warm up (JIT, connection pools). Then each route runs d in all, in
	// rounds that take turns, so that a change in the machine's load
	// during the run weighs on every route alike.
	for _, route := range routes {
		load(t, base+route, conns, time.Second)
	}
	const rounds = 5
	total := map[string]int64{}
	for range rounds {
		for _, route := range routes {
			total[route] += load(t, base+route, conns, d/rounds)
		}
	}
	rate := map[string]float64{}
	for _, route := range routes {
		rate[route] = float64(total[route]) / d.Seconds()
		t.Logf("%-10s %9.0f req/s (%d requests in %v, %d connections)", route, rate[route], total[route], d, conns)
	}
	t.Logf("mesh fetch / TCP fetch = %.2fx; mesh http.get / TCP fetch = %.2fx",
		rate["/mesh"]/rate["/tcp"], rate["/mesh-http"]/rate["/tcp"])
}

// load runs a closed loop: conns clients, each sending its next request as
// soon as the previous answer is read, for d. It returns the number of
// requests answered 200.
func load(t *testing.T, url string, conns int, d time.Duration) int64 {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: waitLimit}
	var n atomic.Int64
	var failed atomic.Value
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				resp, err := c.Get(url)
				if err != nil {
					failed.Store(err.Error())
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Store(fmt.Sprintf("%d %s", resp.StatusCode, body))
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f != nil {
		t.Fatalf("%s: %v", url, f)
	}
	return n.Load()
}
