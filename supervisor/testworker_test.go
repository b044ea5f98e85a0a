package supervisor

// The test binary doubles as the worker under test, as Nomad's testtask
// does: TestMain looks at how it was started and, instead of running the
// tests, plays the exec helper or a worker with the behaviour named in its
// environment. Workers started this way go through the real spawn path
// (exec helper, LISTEN_FDS, the control socketpair) and speak the protocol
// with the real Go SDK in package ipc.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wattd/wattd/ipc"
)

const (
	// envTestWorker lists the behaviours of successive workers of an app,
	// comma separated: the first worker started plays the first, the next
	// the second, and the last one repeats. A behaviour is a name with an
	// optional argument after a colon (see testWorkerMain).
	envTestWorker = "TESTWORKER_BEHAVIOUR"
	// envTestState is a directory where the workers of one app count
	// their starts and leave what tests inspect (pids of grandchildren).
	envTestState = "TESTWORKER_STATE"
	// envTestSleeper makes the binary sleep until killed: the grandchild.
	envTestSleeper = "TESTWORKER_SLEEPER"
)

func TestMain(m *testing.M) {
	// os.Executable is this test binary, so spawn re-executes it as the
	// exec helper (package exechelper, linked in here too, takes over in
	// its init), which then executes it again as the worker.
	if os.Getenv(envTestSleeper) != "" {
		time.Sleep(time.Hour)
		os.Exit(0)
	}
	if b := os.Getenv(envTestWorker); b != "" {
		os.Exit(testWorkerMain(b))
	}
	os.Exit(m.Run())
}

// generation records this start in the state directory and returns its
// number from 0. Every worker appends its pid on a line of its own; an
// O_APPEND write of one short line is atomic, so concurrent starts of
// several slots still get distinct numbers.
func generation(state string) int {
	path := filepath.Join(state, "starts")
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testworker:", err)
		os.Exit(120)
	}
	me := strconv.Itoa(os.Getpid())
	fmt.Fprintln(f, me)
	f.Close()
	b, _ := os.ReadFile(path)
	for i, line := range strings.Split(string(b), "\n") {
		if line == me {
			return i
		}
	}
	return 0
}

// testWorkerMain plays one worker. Behaviours:
//
//	ready            serve HTTP on the passed sockets (or $PORT), say ready,
//	                 report stats, drain when asked, exit 0 on SIGTERM
//	ready-after:D    the same, ready only after D
//	hello-after:D    boot slowly: say hello only after D, then ready
//	never-ready      say hello but never ready; drained at once; exit 0 on SIGTERM
//	no-protocol      never dial the control channel; serve HTTP; sleep
//	crash:N          write a line to stderr and exit N at once
//	crash-after:D    ready, then crash with status 4 after D
//	crash-after-if-0:D  crash-after:D in worker slot 0, ready in the others
//	deaf-crash-after:D  ready; after D stops accepting (the connections
//	                 then queue on its sockets), 1 s later crashes with
//	                 status 4, without a word on the control channel
//	ignore-term      ready, never answer drain, ignore SIGTERM
//	exiting-after:D  ready; after D says exiting (code 5), stops accepting
//	                 and exits 5 only 3 s later, as a process whose end
//	                 takes the kernel a while, leaving "ended-<pid>" in
//	                 the state directory
//	exiting-lie:D    ready; after D says exiting (code 5) but goes on
//	                 serving, deaf to SIGTERM
//	drain-slow:D     ready, answer drain only after D
//	bad-frame        say hello, then write a frame that is not JSON
//	flood:N          serving, the handshake and ready by hand, then N
//	                 stats frames as fast as the channel takes them,
//	                 heapUsed 1 to N, then waits for SIGTERM; answers a
//	                 drain at once
//	grandchild       ready, after starting a child that sleeps (its pid in
//	                 the state directory, file "grandchild")
//	elu:F            ready, reporting stats with event-loop utilisation F
//	                 every WATTD_STATS_INTERVAL_MS (2 s by default)
//	heap:N           the same, reporting N bytes of heap used
//	lag:D            the same, reporting an event-loop delay of at most D
//	                 (p99 D/2) in every report
//	mute-after:D     ready, reporting healthy stats; after D it stops
//	                 reporting, stops answering HTTP and the control
//	                 channel and ignores SIGTERM, as a stuck event loop does
//	probe:CODE       ready, reporting healthy stats; answers GET /health
//	                 with status CODE
//	messenger        speak messaging by hand (see messengerWorker)
//	checks           ready, reporting healthy stats, with custom checks: the
//	                 health check fails once the state directory has a file
//	                 "sick-<pid>", the readiness check answers 503 "warming
//	                 up" until it has "ready-<pid>"; sends one health signal
//	                 {"type":"boot","n":<generation>}
func testWorkerMain(list string) int {
	behaviours := strings.Split(list, ",")
	g := generation(os.Getenv(envTestState))
	b := behaviours[min(g, len(behaviours)-1)]
	name, arg, _ := strings.Cut(b, ":")
	dur := func() time.Duration {
		d, err := time.ParseDuration(arg)
		if err != nil {
			fmt.Fprintf(os.Stderr, "testworker: behaviour %q: %v\n", b, err)
			os.Exit(121)
		}
		return d
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	w := &testWorker{stuck: make(chan struct{})}
	switch name {
	case "crash":
		code, _ := strconv.Atoi(arg)
		fmt.Fprintln(os.Stderr, "boom: crash at start")
		return code
	case "no-protocol":
		w.serve()
		<-term
		return 0
	case "hello-after":
		time.Sleep(dur())
		w.dial()
		w.serve()
		w.ready()
		<-term
		return 0
	case "never-ready":
		w.dial()
		select {
		case <-term:
		case <-w.ctl.Drain:
			// Nothing in flight: drained at once, as the preload does.
			w.ctl.Drained()
			<-term
		}
		return 0
	case "messenger":
		return messengerWorker()
	case "flood":
		n, err := strconv.Atoi(arg)
		if err != nil {
			fmt.Fprintf(os.Stderr, "testworker: behaviour %q: %v\n", b, err)
			return 121
		}
		raw, err := rawControl()
		if err != nil {
			fmt.Fprintf(os.Stderr, "testworker: control: %v\n", err)
			return 121
		}
		ipc.WriteMessage(raw, &ipc.Message{Type: ipc.TypeHello, Versions: []int{ipc.ProtocolVersion}})
		ipc.ReadMessage(raw)
		// What wattd sends next (mesh tables) must not block it; a drain
		// is answered at once, behind whatever of the flood wattd has
		// not read yet.
		go func() {
			for {
				m, err := ipc.ReadMessage(raw)
				if err != nil {
					return
				}
				if m.Type == ipc.TypeDrain {
					ipc.WriteMessage(raw, &ipc.Message{Type: ipc.TypeDrained})
				}
			}
		}()
		w.serve()
		ipc.WriteMessage(raw, &ipc.Message{Type: ipc.TypeReady, Listeners: []string{"http"}})
		for i := 1; i <= n; i++ {
			ipc.WriteMessage(raw, &ipc.Message{Type: ipc.TypeStats, Stats: &ipc.Stats{ELU: 0.1, HeapUsed: uint64(i)}})
		}
		<-term
		return 0
	case "bad-frame":
		// The handshake by hand, then a length prefix followed by bytes
		// that are not JSON: what the SDK never sends.
		raw, err := rawControl()
		if err == nil {
			ipc.WriteMessage(raw, &ipc.Message{Type: ipc.TypeHello, Versions: []int{ipc.ProtocolVersion}})
			ipc.ReadMessage(raw)
			raw.Write([]byte{0, 0, 0, 3, '{', '{', '{'})
		}
		<-term
		return 0
	}
	w.dial()
	w.serve()
	switch name {
	case "ready":
	case "ready-after":
		time.Sleep(dur())
	case "crash-after-if-0":
		if os.Getenv(ipc.EnvWorker) == "0" {
			w.ready()
			time.Sleep(dur())
			fmt.Fprintln(os.Stderr, "boom: crash after ready")
			return 4
		}
	case "crash-after":
		w.ready()
		time.Sleep(dur())
		fmt.Fprintln(os.Stderr, "boom: crash after ready")
		return 4
	case "deaf-crash-after":
		w.ready()
		time.Sleep(dur())
		for _, ln := range w.lns {
			ln.Close()
		}
		time.Sleep(time.Second)
		fmt.Fprintln(os.Stderr, "boom: crash after a deaf second")
		return 4
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		w.ready()
		select {}
	case "exiting-after":
		w.ready()
		time.Sleep(dur())
		w.ctl.Exiting(5)
		for _, ln := range w.lns {
			ln.Close()
		}
		time.Sleep(3 * time.Second)
		os.WriteFile(filepath.Join(os.Getenv(envTestState), "ended-"+strconv.Itoa(os.Getpid())), nil, 0o600)
		return 5
	case "exiting-lie":
		signal.Ignore(syscall.SIGTERM)
		w.ready()
		time.Sleep(dur())
		w.ctl.Exiting(5)
		select {}
	case "drain-slow":
		w.drainDelay = dur()
	case "elu":
		elu, err := strconv.ParseFloat(arg, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "testworker: behaviour %q: %v\n", b, err)
			return 121
		}
		go w.reportStats(ipc.Stats{ELU: elu, HeapUsed: 1 << 20, HeapTotal: 4 << 20}, nil)
	case "lag":
		// Stats whose event-loop delay peaks at D (p99 half of it).
		d := dur()
		go w.reportStats(ipc.Stats{ELU: 0.1, HeapUsed: 1 << 20, HeapTotal: 4 << 20,
			Delay: &ipc.EventLoopDelay{Max: d.Seconds(), P99: d.Seconds() / 2}}, nil)
	case "heap":
		n, err := strconv.ParseUint(arg, 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "testworker: behaviour %q: %v\n", b, err)
			return 121
		}
		go w.reportStats(ipc.Stats{ELU: 0.1, HeapUsed: n, HeapTotal: n}, nil)
	case "mute-after":
		go w.reportStats(ipc.Stats{ELU: 0.1}, w.stuck)
		w.ready()
		time.Sleep(dur())
		signal.Ignore(syscall.SIGTERM)
		close(w.stuck)
		select {}
	case "probe":
		code, err := strconv.Atoi(arg)
		if err != nil {
			fmt.Fprintf(os.Stderr, "testworker: behaviour %q: %v\n", b, err)
			return 121
		}
		w.probeStatus.Store(int64(code))
		go w.reportStats(ipc.Stats{ELU: 0.1}, nil)
	case "checks":
		state, pid := os.Getenv(envTestState), strconv.Itoa(os.Getpid())
		has := func(name string) bool {
			_, err := os.Stat(filepath.Join(state, name+"-"+pid))
			return err == nil
		}
		w.ctl.SetCheck(ipc.CheckHealth, func() ipc.Check { return ipc.Check{OK: !has("sick")} })
		w.ctl.SetCheck(ipc.CheckReadiness, func() ipc.Check {
			if has("ready") {
				return ipc.Check{OK: true}
			}
			return ipc.Check{StatusCode: 503, Body: "warming up"}
		})
		w.ctl.Send(&ipc.Message{Type: ipc.TypeHealthSignals, Signals: []json.RawMessage{
			json.RawMessage(`{"type":"boot","timestamp":1,"n":` + strconv.Itoa(g) + `}`),
			json.RawMessage(`{"no":"type"}`),
		}})
		go w.reportStats(ipc.Stats{ELU: 0.1}, nil)
	case "grandchild":
		self, _ := os.Executable()
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), envTestSleeper+"=1")
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "testworker: grandchild:", err)
			return 122
		}
		os.WriteFile(filepath.Join(os.Getenv(envTestState), "grandchild"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600)
	default:
		fmt.Fprintf(os.Stderr, "testworker: unknown behaviour %q\n", b)
		return 123
	}
	w.ready()
	select {
	case <-term:
	case <-w.ctl.Drain:
		w.drain()
		time.Sleep(w.drainDelay)
		w.ctl.Drained()
		<-term
	}
	return 0
}

type testWorker struct {
	ctl         *ipc.Control
	probeStatus atomic.Int64  // the status of GET /health; 0 means 200
	stuck       chan struct{} // closed when the worker plays a stuck event loop
	srv         http.Server
	lns         []net.Listener
	open        atomic.Int64 // connections accepted and not closed
	drainDelay  time.Duration
}

// drain stops accepting and waits until every connection accepted so far
// has had its response. http.Server.Shutdown is not used: a request read
// after it began is dropped without an answer, which is the loss a drain
// exists to prevent.
func (w *testWorker) drain() {
	w.srv.SetKeepAlivesEnabled(false)
	for _, ln := range w.lns {
		ln.Close()
	}
	// A connection Serve accepted just as its listener closed is counted
	// a moment later: wait for the count to stay at zero for a while.
	quiet := 0
	for quiet < 5 {
		if w.open.Load() == 0 {
			quiet++
		} else {
			quiet = 0
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (w *testWorker) dial() {
	c, err := ipc.Dial()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testworker: dial:", err)
		os.Exit(124)
	}
	w.ctl = c
	// A shed: every response for a moment says Connection: close, and
	// the idle connections close (net/http's way).
	c.OnShed(func() {
		w.srv.SetKeepAlivesEnabled(false)
		time.AfterFunc(300*time.Millisecond, func() { w.srv.SetKeepAlivesEnabled(true) })
	})
}

// rawControl opens the control socket without the SDK.
func rawControl() (net.Conn, error) {
	fd, err := strconv.Atoi(os.Getenv(ipc.EnvControlFD))
	if err != nil {
		return nil, err
	}
	return net.FileConn(os.NewFile(uintptr(fd), "control"))
}

// serve answers every request with the worker's pid, on the passed
// sockets, or on $PORT for a fronted worker.
func (w *testWorker) serve() {
	w.srv.Handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		select {
		case <-w.stuck:
			select {} // a stuck event loop answers nothing
		default:
		}
		if code := w.probeStatus.Load(); code != 0 && r.URL.Path == "/health" {
			rw.WriteHeader(int(code))
		}
		fmt.Fprintf(rw, "pid %d app %s worker %s", os.Getpid(), os.Getenv(ipc.EnvApp), os.Getenv(ipc.EnvWorker))
	})
	w.srv.ConnState = func(c net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			w.open.Add(1)
		case http.StateClosed, http.StateHijacked:
			w.open.Add(-1)
		}
	}
	var lns []net.Listener
	if port := os.Getenv("PORT"); port != "" {
		ln, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testworker: listen:", err)
			os.Exit(125)
		}
		lns = append(lns, ln)
	} else {
		m, err := ipc.Listeners()
		if err != nil && err != ipc.ErrNotSupervised {
			fmt.Fprintln(os.Stderr, "testworker: listeners:", err)
			os.Exit(126)
		}
		for _, ln := range m {
			lns = append(lns, ln)
		}
	}
	w.lns = lns
	for _, ln := range lns {
		go w.srv.Serve(ln)
	}
}

func (w *testWorker) ready() {
	if w.ctl == nil {
		return
	}
	w.ctl.Ready(ipc.ListenerHTTP, ipc.ListenerMesh)
	w.ctl.Send(&ipc.Message{Type: ipc.TypeStats, Stats: &ipc.Stats{ELU: 0.25, HeapUsed: 4096, ActiveConns: 2}})
}

// reportStats sends st at the stats interval wattd gave the worker, as
// the Node preload does, until stop is closed.
func (w *testWorker) reportStats(st ipc.Stats, stop <-chan struct{}) {
	every := 2 * time.Second
	if ms, err := strconv.Atoi(os.Getenv("WATTD_STATS_INTERVAL_MS")); err == nil && ms > 0 {
		every = time.Duration(ms) * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if w.ctl.Send(&ipc.Message{Type: ipc.TypeStats, Stats: &st}) != nil {
				return
			}
		}
	}
}

// readLines is for tests that read a worker's files.
func readLines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
