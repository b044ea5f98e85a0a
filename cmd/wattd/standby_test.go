package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor"
)

// servedBy counts, by pid, the responses of the standby fixture (each body
// is "pid=N"), over keep-alive connections (each renewed every 50
// requests), and the refused dials.
type servedBy struct {
	mu      sync.Mutex
	pids    map[int]int
	first   map[int]time.Time // when a pid first answered
	refused int
	failed  int
}

func (s *servedBy) run(ctx context.Context, addr string, n int) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
				MaxIdleConnsPerHost: 1,
				DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
					c, err := (&net.Dialer{}).DialContext(ctx, network, a)
					if err != nil && strings.Contains(err.Error(), "connection refused") {
						s.mu.Lock()
						s.refused++
						s.mu.Unlock()
					}
					return c, err
				},
			}}
			defer client.CloseIdleConnections()
			// Every 50th request closes its connection: the kernel spreads
			// new connections over the slots' sockets at random, and
			// connections kept for ever could all stay on one slot.
			for i := 0; ctx.Err() == nil; i++ {
				req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
				req.Close = i%50 == 49
				resp, err := client.Do(req)
				if err != nil {
					s.mu.Lock()
					s.failed++
					s.mu.Unlock()
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				pid, _ := strconv.Atoi(strings.TrimPrefix(string(body), "pid="))
				s.mu.Lock()
				if _, ok := s.first[pid]; !ok {
					s.first[pid] = time.Now()
				}
				s.pids[pid]++
				s.mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func (s *servedBy) count(pid int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pids[pid]
}

var listeningLine = regexp.MustCompile(`listening pid=(\d+) worker=(-?\d+) at=(\d+)`)

// listeningAt finds when the fixture process pid started to serve, by its
// listen callback's line, and as which worker.
func listeningAt(out string, pid int) (time.Time, string, bool) {
	for _, m := range listeningLine.FindAllStringSubmatch(out, -1) {
		if m[1] == strconv.Itoa(pid) {
			ms, _ := strconv.ParseInt(m[3], 10, 64)
			return time.UnixMilli(ms), m[2], true
		}
	}
	return time.Time{}, "", false
}

// promotedLineAs reports whether the app line a promoted standby pid
// prints on its "promoted" event was logged with the slot's worker number.
func promotedLineAs(out string, pid, slot int) bool {
	prefix := fmt.Sprintf("promoted pid=%d ", pid)
	for _, line := range strings.Split(out, "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		if msg, _ := e["msg"].(string); strings.HasPrefix(msg, prefix) {
			return e["worker"] == float64(slot)
		}
	}
	return false
}

// promotedInto waits, up to within for each, for the standby pid to run
// its listen callback and then to be slot's worker, ready, and returns
// when it listened and the WATTD_WORKER_ID it saw.
func promotedInto(t *testing.T, d *daemon, app string, pid, slot int, within time.Duration) (time.Time, string) {
	t.Helper()
	var at time.Time
	var asWorker string
	waitFor(t, within, fmt.Sprintf("standby %d listening", pid), func() bool {
		var ok bool
		at, asWorker, ok = listeningAt(d.out.String(), pid)
		return ok
	})
	waitFor(t, within, fmt.Sprintf("standby %d ready in slot %d", pid, slot), func() bool {
		w := d.app(app).Workers[slot]
		return w.PID == pid && w.State == "ready"
	})
	return at, asWorker
}

func warmStandby(t *testing.T, d *daemon, app string) supervisor.StandbyStatus {
	t.Helper()
	var sb supervisor.StandbyStatus
	waitFor(t, 30*time.Second, "a standby of "+app+" ready to take a slot", func() bool {
		a := d.app(app)
		for _, s := range a.Standbys {
			if s.State == "standby" {
				sb = s
				return true
			}
		}
		return false
	})
	return sb
}

// TestStandbyTakesCrashedWorkersSlot: with "standby": 1, a worker killed
// with SIGKILL under keep-alive load is replaced by the standby, which
// takes the dead worker's socket: no connection is refused, the standby's
// pid becomes the slot's worker, a new standby appears, and the standby
// served nothing before it was promoted, though it had loaded the app.
func TestStandbyTakesCrashedWorkersSlot(t *testing.T) {
	integration(t)
	port := freePort(t)
	rcv := otlpHTTPReceiver(t) // the promoted standby's spans name its slot
	dir := project(t, map[string]any{
		"entrypoint": "web",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"telemetry":  rcv.telemetry("standby"),
		"applications": []any{map[string]any{
			"id": "web", "path": fixture("apps/standby"), "workers": 2, "standby": 1,
		}},
	})
	d := startWattd(t, dir, port, startOpts{})
	d.waitReady("web", 30*time.Second)
	sb := warmStandby(t, d, "web")
	if !strings.Contains(d.out.String(), fmt.Sprintf("loaded pid=%d", sb.PID)) {
		t.Fatalf("standby %d has not loaded the app", sb.PID)
	}

	res := &servedBy{pids: map[int]int{}, first: map[int]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { res.run(ctx, d.addr(), 8) })
	before := d.app("web")
	// Load on both workers, none of it on the standby.
	waitFor(t, 20*time.Second, "both workers serving", func() bool {
		return res.count(before.Workers[0].PID) > 50 && res.count(before.Workers[1].PID) > 50
	})
	if n := res.count(sb.PID); n != 0 {
		t.Fatalf("the standby %d served %d requests before it was promoted", sb.PID, n)
	}
	if _, _, ok := listeningAt(d.out.String(), sb.PID); ok {
		t.Fatalf("the standby's listen callback ran before it was promoted")
	}
	// Its held server's address() is the public one, as every worker's.
	if want := fmt.Sprintf("address pid=%d port=%d", sb.PID, port); !strings.Contains(d.out.String(), want) {
		t.Fatalf("the standby did not log %q", want)
	}

	victim := before.Workers[1]
	killed := time.Now()
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	promoted, asWorker := promotedInto(t, d, "web", sb.PID, 1, 20*time.Second)
	waitFor(t, 20*time.Second, "the promoted standby serving", func() bool { return res.count(sb.PID) > 20 })
	var next supervisor.StandbyStatus
	waitFor(t, 30*time.Second, "a new standby", func() bool {
		for _, s := range d.app("web").Standbys {
			if s.PID != sb.PID && s.PID != 0 {
				next = s
				return true
			}
		}
		return false
	})
	cancel()
	wg.Wait()
	waitFor(t, 20*time.Second, "a span of the promoted standby", func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		for _, sp := range rcv.spans {
			if sp.res["process.pid"] == int64(sb.PID) {
				if sp.res["wattd.worker.id"] != int64(1) {
					t.Fatalf("the promoted standby's span has worker id %v, want 1", sp.res["wattd.worker.id"])
				}
				return true
			}
		}
		return false
	})

	if asWorker != "1" {
		t.Errorf("the promoted standby's listen callback saw WATTD_WORKER_ID %s, want 1", asWorker)
	}
	if want := fmt.Sprintf("promoted pid=%d workerId=1 global=1", sb.PID); !strings.Contains(d.out.String(), want) {
		t.Errorf("no %q: the app was not told its slot", want)
	}
	// The promoted standby's output is its slot's worker's (ctl logs --worker 1).
	waitFor(t, 10*time.Second, "a line of the promoted standby labelled as worker 1", func() bool {
		return promotedLineAs(d.out.String(), sb.PID, 1)
	})
	if res.refused != 0 {
		t.Errorf("%d connections refused", res.refused)
	}
	after := d.app("web")
	if w := after.Workers[1]; w.Restarts != 1 || w.LastExit != "signal: killed" {
		t.Errorf("worker 1: restarts %d, last exit %q; want 1, signal: killed", w.Restarts, w.LastExit)
	}
	if after.Workers[0].PID != before.Workers[0].PID {
		t.Errorf("worker 0 changed: %d -> %d", before.Workers[0].PID, after.Workers[0].PID)
	}
	handOver := promoted.Sub(killed)
	firstStart := before.Workers[0].StartTime // seconds, the first start of worker 0
	t.Logf("kill -9 to the promoted standby listening: %s (a normal start of worker 0 took %.0f ms); requests: %d ok on the standby, %d failed in flight, %d refused; new standby %d",
		handOver.Round(time.Millisecond), firstStart*1000, res.count(sb.PID), res.failed, res.refused, next.PID)
	if handOver > 5*time.Second {
		t.Errorf("the standby took %s to serve after the kill", handOver)
	}
}

// TestStartingStandbyTakesTheSlot: a worker that dies while its app's
// standby is still loading is replaced by that standby rather than by a
// process started then, which would be further behind: the slot takes it
// at once, and it listens on the slot's socket as soon as the app calls
// listen(). Promoted, it is its slot's to time: the pool's start timeout
// for standbys, which passes while it is held, does not stop it. A
// standby starting for longer than twice the last one's start and a
// second is taken for stuck, and the slot starts a process instead. One
// that has not said hello yet is promoted too, once it has.
func TestStartingStandbyTakesTheSlot(t *testing.T) {
	integration(t)
	port := freePort(t)
	// The fixture's standbys hold their listen() while this file exists,
	// and their whole start, before the preload's hello, while start does
	// (hold.cjs).
	gate := filepath.Join(t.TempDir(), "gate")
	start := filepath.Join(t.TempDir(), "start")
	closeGate := func() {
		if err := os.WriteFile(gate, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	openGate := func() {
		if err := os.Remove(gate); err != nil {
			t.Fatal(err)
		}
	}
	closeGate()
	dir := project(t, map[string]any{
		"entrypoint":   "web",
		"startTimeout": 6000,
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{
			"id": "web", "path": fixture("apps/standby"), "workers": 1, "standby": 1,
			"env":         map[string]any{"LISTEN_GATE": gate, "START_GATE": start},
			"nodeOptions": "--require " + fixture("apps/standby/hold.cjs"),
		}},
	})
	d := startWattd(t, dir, port, startOpts{})
	d.waitReady("web", 30*time.Second)
	// held waits for a standby other than not, held in its start for at
	// least age.
	held := func(not int, age float64) supervisor.StandbyStatus {
		t.Helper()
		var sb supervisor.StandbyStatus
		waitFor(t, 30*time.Second, fmt.Sprintf("a standby held in its start for %.1f s", age), func() bool {
			for _, s := range d.app("web").Standbys {
				if s.PID != not && s.State == "starting" && s.Uptime >= age &&
					strings.Contains(d.out.String(), fmt.Sprintf("gated pid=%d", s.PID)) {
					sb = s
					return true
				}
			}
			return false
		})
		return sb
	}
	kill := func(pid int) {
		t.Helper()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}

	// The first standby's start takes 2.5 s: a starting standby is then
	// on time for 6 s.
	first := held(0, 2.5)
	openGate()
	warmStandby(t, d, "web")

	// Its successor is held; the worker dies 2 s into that start.
	closeGate()
	kill(first.PID)
	sb := held(first.PID, 2)
	sbStart := time.Now().Add(-time.Duration(sb.Uptime * float64(time.Second)))
	kill(d.app("web").Workers[0].PID)
	waitFor(t, 10*time.Second, "the starting standby in the slot", func() bool {
		w := d.app("web").Workers[0]
		return w.PID == sb.PID && w.State == "starting"
	})
	// The pool's 6 s for a standby to be ready pass while it is held.
	for time.Since(sbStart) < 6500*time.Millisecond {
		if err := syscall.Kill(sb.PID, 0); err != nil {
			t.Fatalf("the promoted standby %d is gone %s into its start: %v", sb.PID, time.Since(sbStart).Round(time.Millisecond), err)
		}
		if w := d.app("web").Workers[0]; w.PID != sb.PID {
			t.Fatalf("the slot's worker is %d, not the promoted standby %d", w.PID, sb.PID)
		}
		time.Sleep(100 * time.Millisecond)
	}
	openGate()
	_, asWorker := promotedInto(t, d, "web", sb.PID, 0, 10*time.Second)
	if asWorker != "0" {
		t.Errorf("the promoted standby's listen callback saw WATTD_WORKER_ID %s, want 0", asWorker)
	}
	if resp, err := http.Get("http://" + d.addr() + "/"); err != nil {
		t.Errorf("GET after the promotion: %v", err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != fmt.Sprintf("pid=%d", sb.PID) {
			t.Errorf("GET after the promotion answered %q, want pid=%d", body, sb.PID)
		}
	}
	if w := d.app("web").Workers[0]; w.Restarts != 1 {
		t.Errorf("worker 0: %d restarts, want 1", w.Restarts)
	}
	if !regexp.MustCompile(fmt.Sprintf(`"msg":"standby promoted into the slot"[^\n]*"warm":false[^\n]*"pid":%d`, sb.PID)).MatchString(d.out.String()) {
		t.Errorf("no log of the promotion of a starting standby:\n%s", d.out.String())
	}
	next := warmStandby(t, d, "web") // started quickly
	if n := strings.Count(d.out.String(), "loaded pid="); n != 4 {
		// The first worker, the first standby, its successor and the
		// successor's: no process was started for the slot.
		t.Errorf("%d processes loaded the app, want 4", n)
	}

	// A standby held for longer than twice that and a second is not
	// taken: the slot starts a process, which is not held.
	// ctl ps shows it a standby once it is warm; the pool logs that
	// right after, from another goroutine.
	startupLine := regexp.MustCompile(fmt.Sprintf(`"msg":"standby worker ready to take a slot"[^\n]*"startup":(\d+),"pid":%d`, next.PID))
	var m []string
	waitFor(t, 5*time.Second, fmt.Sprintf("the startup of standby %d logged", next.PID), func() bool {
		m = startupLine.FindStringSubmatch(d.out.String())
		return m != nil
	})
	startupMs, _ := strconv.Atoi(m[1])
	lateAge := float64(2*startupMs+1300) / 1000
	if lateAge > 5 {
		t.Fatalf("the standby took %d ms to start: a standby late by that is past the pool's 6 s", startupMs)
	}
	closeGate()
	kill(next.PID)
	late := held(next.PID, lateAge)
	kill(sb.PID)
	waitFor(t, 20*time.Second, "a new process ready in the slot", func() bool {
		w := d.app("web").Workers[0]
		return w.PID != sb.PID && w.PID != late.PID && w.State == "ready"
	})
	if regexp.MustCompile(fmt.Sprintf(`"msg":"standby promoted into the slot"[^\n]*"pid":%d`, late.PID)).MatchString(d.out.String()) {
		t.Errorf("the late standby %d was promoted", late.PID)
	}
	openGate()

	// A standby held before its hello (the late one's start, over 1.3 s,
	// makes it on time for over 3.6 s): the slot takes it, and it gets
	// the promotion after the welcome.
	last := warmStandby(t, d, "web")
	if err := os.WriteFile(start, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	kill(last.PID)
	var early supervisor.StandbyStatus
	waitFor(t, 30*time.Second, "a standby held before its hello", func() bool {
		for _, s := range d.app("web").Standbys {
			if s.PID != last.PID && s.State == "starting" &&
				strings.Contains(d.out.String(), fmt.Sprintf("held before hello pid=%d", s.PID)) {
				early = s
				return true
			}
		}
		return false
	})
	kill(d.app("web").Workers[0].PID)
	waitFor(t, 10*time.Second, "the standby held before its hello in the slot", func() bool {
		return d.app("web").Workers[0].PID == early.PID
	})
	if err := os.Remove(start); err != nil {
		t.Fatal(err)
	}
	if _, as := promotedInto(t, d, "web", early.PID, 0, 10*time.Second); as != "0" {
		t.Errorf("the standby held before its hello listens as worker %q, want 0", as)
	}
}

// TestStartingStandbyIsSteeredAround: a worker that dies while the only
// standby is still loading is replaced by that standby, and until it is
// ready its slot takes no new connection: they go to the other worker
// instead of waiting on the dead one's socket for the standby's start.
func TestStartingStandbyIsSteeredAround(t *testing.T) {
	integration(t)
	port := freePort(t)
	// A standby that finds this file at its start calls listen() only
	// once it is gone (index.js): it loads, then holds.
	gate := filepath.Join(t.TempDir(), "gate")
	dir := project(t, map[string]any{
		"entrypoint": "web",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{
			"id": "web", "path": fixture("apps/standby"), "workers": 2, "standby": 1,
			"env": map[string]any{"LISTEN_GATE": gate},
		}},
	})
	d := startWattd(t, dir, port, startOpts{})
	d.waitReady("web", 30*time.Second)
	first := warmStandby(t, d, "web")
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	opened := false
	openGate := func() {
		if !opened {
			opened = true
			if err := os.Remove(gate); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(openGate)
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Its successor loads the app and holds its listen().
	var sb supervisor.StandbyStatus
	waitFor(t, 30*time.Second, "the next standby loaded and held", func() bool {
		for _, s := range d.app("web").Standbys {
			if s.PID != first.PID && s.State == "starting" && strings.Contains(d.out.String(), fmt.Sprintf("loaded pid=%d", s.PID)) {
				sb = s
				return true
			}
		}
		return false
	})
	other := d.app("web").Workers[1].PID
	if err := syscall.Kill(d.app("web").Workers[0].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the loading standby in slot 0", func() bool {
		return d.app("web").Workers[0].PID == sb.PID
	})
	// Each request on a connection of its own: left to the kernel, about
	// half of them would wait on slot 0's socket for the held standby.
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	want := fmt.Sprintf("pid=%d", other)
	for i := range 30 {
		resp, err := c.Get("http://" + d.addr() + "/")
		if err != nil {
			t.Fatalf("request %d while the promoted standby loads: %v", i+1, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != want {
			t.Fatalf("request %d answered by %q, want the other worker's %q", i+1, body, want)
		}
	}
	openGate()
	promotedInto(t, d, "web", sb.PID, 0, 10*time.Second)
}

// TestStandbyTakesTheSlotOfAWorkerThatSaysItExits: a worker that ends by
// itself says so before its process is gone, and the standby takes its
// slot then: it listens while the old process is still there (lingering
// 1.5 s in an exit listener), and the exit counts once.
func TestStandbyTakesTheSlotOfAWorkerThatSaysItExits(t *testing.T) {
	d := startStandbyWeb(t)
	sb := warmStandby(t, d, "web")
	victim := d.app("web").Workers[0].PID
	go func() {
		if resp, err := http.Get("http://" + d.addr() + "/exit-slowly"); err == nil {
			resp.Body.Close()
		}
	}()
	waitFor(t, 20*time.Second, "the standby listening", func() bool {
		_, _, ok := listeningAt(d.out.String(), sb.PID)
		return ok
	})
	if !alive(victim) {
		t.Fatal("the standby listened only after the old process had ended: the exit was not said, or not heeded")
	}
	waitFor(t, 20*time.Second, "the old process gone", func() bool { return !alive(victim) })
	waitFor(t, 20*time.Second, "the standby serving as worker 0", func() bool {
		w := d.app("web").Workers[0]
		return w.PID == sb.PID && w.State == "ready"
	})
	if w := d.app("web").Workers[0]; w.Restarts != 1 || w.LastExit != "exit status 3" {
		t.Errorf("worker 0: restarts %d, last exit %q; want 1, exit status 3", w.Restarts, w.LastExit)
	}
}

// startStandbyWeb runs the standby fixture as application "web", one
// worker and one standby, and waits until the worker is ready.
func startStandbyWeb(t *testing.T) *daemon {
	t.Helper()
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"entrypoint": "web",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{
			"id": "web", "path": fixture("apps/standby"), "workers": 1, "standby": 1,
		}},
	})
	d := startWattd(t, dir, port, startOpts{})
	d.waitReady("web", 30*time.Second)
	return d
}

// TestStandbyLifecycle: a standby that dies is replaced; standbys are
// discarded and started afresh when
// what they hold goes stale — after `ctl restart` (new code) and after
// scaling (new slots, whose sockets the old standby has no copies of) —
// and stopped with wattd.
func TestStandbyLifecycle(t *testing.T) {
	d := startStandbyWeb(t)
	first := warmStandby(t, d, "web")
	// Where workers show their cgroup's memory, the standby does too.
	if w := d.waitReady("web", 30*time.Second).Workers[0]; w.Memory > 0 && first.Memory == 0 {
		t.Errorf("the standby shows no memory while its app's worker shows %d bytes", w.Memory)
	}

	// A new warm standby whose pid is not old's, with old gone.
	// gone says old must have exited: not so for one that was promoted.
	replaced := func(old supervisor.StandbyStatus, after string, gone bool) supervisor.StandbyStatus {
		t.Helper()
		var sb supervisor.StandbyStatus
		waitFor(t, 30*time.Second, "a new standby after "+after, func() bool {
			for _, s := range d.app("web").Standbys {
				if s.PID != old.PID && s.State == "standby" {
					sb = s
					return true
				}
			}
			return false
		})
		if gone {
			waitFor(t, 20*time.Second, fmt.Sprintf("the standby %d started before %s gone", old.PID, after), func() bool { return !alive(old.PID) })
		}
		if n := len(d.app("web").Standbys); n != 1 {
			t.Fatalf("%d standbys after %s, want 1", n, after)
		}
		return sb
	}

	// A standby that dies is replaced, and counted.
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first = replaced(first, "the standby was killed", true)
	if a := d.app("web"); a.StandbyRestarts != 1 || a.Workers[0].Restarts != 0 {
		t.Errorf("standby restarts %d, worker restarts %d; want 1 and 0", a.StandbyRestarts, a.Workers[0].Restarts)
	}

	if out, err := d.ctl("restart", "web"); err != nil {
		t.Fatalf("ctl restart: %v\n%s", err, out)
	}
	second := replaced(first, "ctl restart", true)

	if out, err := d.ctl("scale", "web", "2"); err != nil {
		t.Fatalf("ctl scale: %v\n%s", err, out)
	}
	third := replaced(second, "scaling up", true)
	// The new standby holds the new slot's sockets: it can take it.
	w1 := d.waitReady("web", 30*time.Second).Workers[1]
	if err := syscall.Kill(w1.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the standby in the added slot", func() bool {
		w := d.app("web").Workers[1]
		return w.PID == third.PID && w.State == "ready"
	})
	fourth := replaced(third, "a promotion", false)
	if out, err := d.ctl("ps"); err != nil || !strings.Contains(out, "standby") {
		t.Errorf("ctl ps does not show the standby: %v\n%s", err, out)
	}

	d.signal(syscall.SIGTERM)
	if code := d.wait(30 * time.Second); code != 0 {
		t.Fatalf("wattd exited %d", code)
	}
	if alive(fourth.PID) {
		t.Errorf("standby %d outlived wattd", fourth.PID)
	}
}

// TestStandbyRefusedWhereUnsupported: an application whose workers cannot
// hold their listen() (a program wattd fronts on $PORT) refuses the key,
// naming the file and the key's place in it.
func TestStandbyRefusedWhereUnsupported(t *testing.T) {
	refusedAtStart(t, "standby", 1, "expected no standby workers")
}

// TestStandbyRollsAhead: an application with standbys rolls by starting
// its new workers ahead, together, as fresh standbys, and promoting one
// into each slot beside the old worker; under load nothing fails, and the
// standbys that were there before the restart (old code) are not used.
func TestStandbyRollsAhead(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"entrypoint": "web",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{
			"id": "web", "path": fixture("apps/standby"), "workers": 2, "standby": 1,
		}},
	})
	d := startWattd(t, dir, port, startOpts{})
	d.waitReady("web", 30*time.Second)
	old := warmStandby(t, d, "web")
	mark := len(d.out.String())
	began := time.Now()
	ok := d.rollingRestartUnderLoad("web", false)
	took := time.Since(began)
	roll := d.out.String()[mark:]
	if n := strings.Count(roll, "standby promoted into the slot"); n != 2 {
		t.Errorf("%d standbys promoted during the restart, want 2 (one per slot)", n)
	}
	for _, w := range d.app("web").Workers {
		if w.PID == old.PID {
			t.Errorf("worker %d is the standby started before the restart (%d)", w.Index, old.PID)
		}
	}
	waitFor(t, 20*time.Second, "the pre-restart standby gone", func() bool { return !alive(old.PID) })
	waitFor(t, 30*time.Second, "one standby again", func() bool {
		a := d.app("web")
		return len(a.Standbys) == 1 && a.Standbys[0].State == "standby"
	})
	t.Logf("rolling restart of 2 workers with standbys ahead: %s, %d requests served meanwhile", took.Round(time.Millisecond), ok)
}

// TestStandbyCountReload: a reload that changes only "standby" changes the
// number of standbys and leaves the workers alone.
func TestStandbyCountReload(t *testing.T) {
	integration(t)
	port := freePort(t)
	cfg := func(n int) map[string]any {
		return map[string]any{
			"entrypoint": "web",
			"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
			"applications": []any{map[string]any{
				"id": "web", "path": fixture("apps/standby"), "workers": 1, "standby": n,
			}},
		}
	}
	dir := project(t, cfg(1))
	d := startWattd(t, dir, port, startOpts{})
	worker := d.waitReady("web", 30*time.Second).Workers[0].PID
	first := warmStandby(t, d, "web")

	reload := func(n int) {
		t.Helper()
		writeJSON(t, filepath.Join(dir, "watt.json"), cfg(n))
		out, err := d.ctl("reload")
		if err != nil {
			t.Fatalf("ctl reload: %v\n%s", err, out)
		}
		// The answer says what changed, as it does for the worker count.
		if want := fmt.Sprintf("web %d->%d", map[int]int{2: 1, 0: 2}[n], n); !strings.Contains(out, "Standby") || !strings.Contains(out, want) {
			t.Errorf("ctl reload says:\n%s\nwant a Standby line with %q", out, want)
		}
	}
	reload(2)
	waitFor(t, 30*time.Second, "two standbys", func() bool {
		a := d.app("web")
		n := 0
		for _, s := range a.Standbys {
			if s.State == "standby" {
				n++
			}
		}
		return a.Standby == 2 && n == 2
	})
	reload(0)
	waitFor(t, 20*time.Second, "no standby", func() bool {
		a := d.app("web")
		return a.Standby == 0 && len(a.Standbys) == 0
	})
	waitFor(t, 20*time.Second, "the first standby gone", func() bool { return !alive(first.PID) })
	if a := d.app("web"); a.Workers[0].PID != worker || a.Workers[0].Restarts != 0 {
		t.Errorf("the worker changed: pid %d -> %d, restarts %d", worker, a.Workers[0].PID, a.Workers[0].Restarts)
	}
	// A reload that rolls the app and changes its standby count says both.
	c := cfg(1)
	c["applications"].([]any)[0].(map[string]any)["env"] = map[string]any{"EDITED": "1"}
	writeJSON(t, filepath.Join(dir, "watt.json"), c)
	out, err := d.ctl("reload", "--json")
	var res struct {
		Changed []string
		Standby []struct {
			App      string
			From, To int
		}
	}
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || !slices.Equal(res.Changed, []string{"web"}) ||
		len(res.Standby) != 1 || res.Standby[0].App != "web" || res.Standby[0].From != 0 || res.Standby[0].To != 1 {
		t.Errorf("ctl reload --json of a rolled app whose standby count changed: %v\n%s", err, out)
	}
}

// TestSilentStandbyIsNotPromoted: a standby whose process is stopped
// (SIGSTOP), or whose event loop is stuck, stops reporting stats; when a
// worker dies it is killed rather than promoted, which would leave the
// slot waiting for startTimeout (30 s) with its connections queued, and
// the slot gets a new process at once.
func TestSilentStandbyIsNotPromoted(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"entrypoint":   "web",
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/standby"), "workers": 1, "standby": 1}},
	})
	d := startWattd(t, dir, port, startOpts{env: []string{"WATTD_STATS_INTERVAL_MS=200"}})
	waitHTTP(t, d.url("/"), 20*time.Second)
	old := d.waitReady("web", 20*time.Second).Workers[0].PID
	sb := warmStandby(t, d, "web")
	if err := syscall.Kill(sb.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(sb.PID, syscall.SIGCONT) })
	// Silent for two stats periods and a second: 1.4 s here.
	time.Sleep(2 * time.Second)
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var now int
	waitFor(t, 10*time.Second, "the slot ready again", func() bool {
		w := d.app("web").Workers[0]
		now = w.PID
		return w.PID != old && w.State == "ready"
	})
	t.Logf("slot ready again %s after the kill", time.Since(start).Round(time.Millisecond))
	if now == sb.PID {
		t.Fatalf("the stopped standby %d was promoted", sb.PID)
	}
	if code, body, err := get(fresh, d.url("/")); code != 200 || body != "pid="+strconv.Itoa(now) {
		t.Fatalf("GET /: %d %q %v, want the new worker %d", code, body, err, now)
	}
	waitFor(t, 10*time.Second, "the stopped standby killed", func() bool { return !alive(sb.PID) })
	found := false
	for _, e := range logEntries(d.out.String(), "standby sends no stats; killing it instead of promoting it") {
		found = found || e["pid"] == float64(sb.PID)
	}
	if !found {
		t.Error("no warning names the stopped standby")
	}
	if next := warmStandby(t, d, "web"); next.PID == sb.PID {
		t.Errorf("standby %d still listed", sb.PID)
	}
}

var warmedLine = regexp.MustCompile(`"msg":"standby warmed up".*?"requests":(\d+).*?"pid":(\d+)`)

// TestStandbyWarmsUpOnEveryNode: under wattd, on every node of
// WATTD_TEST_NODES, a standby left alone warms up (wattd logs it at debug
// level with the requests it served itself), and once promoted into the
// slot of a killed worker it serves the app as that slot's worker.
func TestStandbyWarmsUpOnEveryNode(t *testing.T) {
	integration(t)
	for _, n := range testNodes {
		node := nodePath(t, n)
		t.Run(nodeVersion(t, node), func(t *testing.T) {
			port := freePort(t)
			dir := project(t, map[string]any{
				"entrypoint": "web",
				"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
				"logger":     map[string]any{"level": "debug"},
				"applications": []any{map[string]any{
					"id": "web", "path": fixture("apps/standby"), "workers": 1, "standby": 1,
				}},
			})
			d := startWattd(t, dir, port, startOpts{env: []string{"WATTD_NODE=" + node}})
			d.waitReady("web", 30*time.Second)
			sb := warmStandby(t, d, "web")
			var requests int
			waitFor(t, 20*time.Second, "the standby's warm-up logged", func() bool {
				for _, m := range warmedLine.FindAllStringSubmatch(d.out.String(), -1) {
					if m[2] == strconv.Itoa(sb.PID) {
						requests, _ = strconv.Atoi(m[1])
						return true
					}
				}
				return false
			})
			if requests < 100 {
				t.Errorf("the standby warmed up with %d requests, want at least 100", requests)
			}
			victim := d.app("web").Workers[0].PID
			if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 20*time.Second, "the standby in the slot, ready", func() bool {
				w := d.app("web").Workers[0]
				return w.PID == sb.PID && w.State == "ready"
			})
			if _, body, err := get(fresh, d.url("/")); err != nil || body != fmt.Sprintf("pid=%d", sb.PID) {
				t.Errorf("GET / after the promotion: %q, %v; want pid=%d", body, err, sb.PID)
			}
		})
	}
}

// TestStandbyExample runs testdata/examples/standby as README describes:
// the standby warms up, and a worker killed with SIGKILL is replaced by it.
func TestStandbyExample(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := t.TempDir()
	// The example's app path is relative ("../hello/web"): run a copy of
	// both, side by side as in testdata/examples.
	for _, ex := range []string{"standby", "hello"} {
		if err := os.CopyFS(filepath.Join(dir, ex), os.DirFS(filepath.Join(repoRoot, "testdata", "examples", ex))); err != nil {
			t.Fatal(err)
		}
	}
	d := startWattd(t, filepath.Join(dir, "standby"), port, startOpts{})
	d.waitReady("web", 30*time.Second)
	sb := warmStandby(t, d, "web")
	waitFor(t, 20*time.Second, "the standby's warm-up logged", func() bool {
		for _, m := range warmedLine.FindAllStringSubmatch(d.out.String(), -1) {
			if m[2] == strconv.Itoa(sb.PID) {
				return true
			}
		}
		return false
	})
	if err := syscall.Kill(d.app("web").Workers[1].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the standby in worker 1's slot, ready", func() bool {
		w := d.app("web").Workers[1]
		return w.PID == sb.PID && w.State == "ready"
	})
}

// TestScaleDownWithStandbyUnderLoad: scaling down an application with a
// standby loses no request. The standby holds copies of every slot's
// sockets, so a removed slot's socket would stay in the port's group,
// taking new connections that nobody accepts, until the standby exits;
// wattd ends such standbys before it closes the sockets.
func TestScaleDownWithStandbyUnderLoad(t *testing.T) {
	d := startStandbyFixture(t, 3, 1, nil, nil)
	d.waitReady("web", 30*time.Second)
	for round := range 3 {
		warmStandby(t, d, "web")
		ctx, cancel := context.WithCancel(context.Background())
		var kept, fresh *loadResult
		var wg sync.WaitGroup
		wg.Go(func() { kept = keepAliveLoad(ctx, d.addr(), 8) })
		wg.Go(func() { fresh = load(ctx, d.url("/"), 16) })
		if out, err := d.ctl("scale", "web", "2"); err != nil {
			cancel()
			t.Fatalf("ctl scale web 2: %v\n%s", err, out)
		}
		// Load goes on a little after the change: connections queued on a
		// socket that nobody accepts would fail in that time.
		time.Sleep(500 * time.Millisecond)
		cancel()
		wg.Wait()
		t.Logf("round %d: kept-alive %+v, new connections %+v", round, *kept, *fresh)
		if kept.failed+kept.refused+fresh.failed+fresh.refused != 0 || fresh.ok == 0 {
			t.Fatalf("round %d: scaling down with a standby lost requests: kept-alive %+v, new connections %+v", round, *kept, *fresh)
		}
		if out, err := d.ctl("scale", "web", "3"); err != nil {
			t.Fatalf("ctl scale web 3: %v\n%s", err, out)
		}
	}
}

// TestStuckPromotedStandbyIsReplaced: a standby promoted warm that does
// not take its slot (its event loop stops as it listens) is killed after
// the hand-over bound, not held until startTimeout, and the slot then
// starts a process rather than promote the next standby, which runs the
// same code.
func TestStuckPromotedStandbyIsReplaced(t *testing.T) {
	d := startStandbyFixture(t, 1, 1, map[string]any{"HANG_PROMOTED": "1"}, map[string]any{"startTimeout": 60000})
	first := d.waitReady("web", 30*time.Second).Workers[0]
	sb := warmStandby(t, d, "web")
	killed := time.Now()
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.waitOutput(fmt.Sprintf("hanging pid=%d", sb.PID), 20*time.Second)
	var w supervisor.WorkerStatus
	waitFor(t, 20*time.Second, "a started worker ready in the slot", func() bool {
		w = d.app("web").Workers[0]
		return w.State == "ready" && w.PID != 0 && w.PID != first.PID && w.PID != sb.PID
	})
	if took := time.Since(killed); took > 15*time.Second {
		t.Fatalf("the slot took %s to get a worker again, want the hand-over bound and a start", took)
	}
	if alive(sb.PID) {
		t.Fatalf("the stuck standby %d is still running", sb.PID)
	}
	if !strings.Contains(d.out.String(), "promoted standby did not take the slot in time") {
		t.Fatal("no log line says why the standby was killed")
	}
	// A process, not another standby (those say so in their first line).
	if _, asWorker, ok := listeningAt(d.out.String(), w.PID); !ok || asWorker != "0" {
		t.Fatalf("the slot's worker %d listened as worker %q (found %v), want a process started as worker 0", w.PID, asWorker, ok)
	}
}

// TestStandbysDoNotHurryACrashLoop: an app whose every process exits as
// it starts to serve crashes in a loop; with a standby its slot still
// waits out the restart policy's back-off between attempts, instead of
// promoting standby after standby at once and reaching the crash-loop
// limit within a second or so.
func TestStandbysDoNotHurryACrashLoop(t *testing.T) {
	crash := filepath.Join(t.TempDir(), "crash")
	d := startStandbyFixture(t, 1, 2, map[string]any{"EXIT_ON_LISTEN": crash}, nil)
	first := d.waitReady("web", 30*time.Second).Workers[0]
	warmStandby(t, d, "web")
	if err := os.WriteFile(crash, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Paced (100 ms, doubling), the ten restarts the policy allows take
	// well over 4 s; unpaced they took about one.
	var w supervisor.WorkerStatus
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if w = d.app("web").Workers[0]; w.State == "failed" {
			t.Fatalf("the slot gave up %d restarts into the crash loop: %s", w.Restarts, w.LastExit)
		}
	}
	if w.Restarts < 3 {
		t.Fatalf("%d restarts in 4 s, want the slot still trying (at least 3)", w.Restarts)
	}
}

// TestCrashInARowPromotesOnceTheBackoffIsLived: a worker that dies soon
// after the one before it (a crash in a row, which the restart policy
// backs off) but lived longer than that back-off is replaced by a warm
// standby at once: its life paced the attempts already. One that dies
// sooner has the slot wait out the rest of the back-off first, so that a
// crash loop is not hurried by the standbys.
func TestCrashInARowPromotesOnceTheBackoffIsLived(t *testing.T) {
	// Back-offs long enough to tell "at once" from "after it" on a slow
	// machine: 2.5 s (±20%) for the second crash in a row, 5 s for the
	// third.
	d := startStandbyFixture(t, 1, 2, nil, map[string]any{
		"restart": map[string]any{"initialDelay": 2500, "resetAfter": 600000},
	})
	first := d.waitReady("web", 30*time.Second).Workers[0]
	warmStandbys := func(n int) []int {
		var pids []int
		waitFor(t, 30*time.Second, fmt.Sprintf("%d standbys ready to take a slot", n), func() bool {
			pids = pids[:0]
			for _, s := range d.app("web").Standbys {
				if s.State == "standby" {
					pids = append(pids, s.PID)
				}
			}
			return len(pids) == n
		})
		return pids
	}
	// replaced kills pid and waits for the slot's next worker, which must
	// be one of the standbys sbs; it returns it and how long that took.
	replaced := func(pid int, sbs []int, within time.Duration) (supervisor.WorkerStatus, time.Duration) {
		t.Helper()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		var w supervisor.WorkerStatus
		waitFor(t, within, "a standby ready in the slot", func() bool {
			w = d.app("web").Workers[0]
			return w.State == "ready" && w.PID != 0 && w.PID != pid
		})
		if !slices.Contains(sbs, w.PID) {
			t.Fatalf("slot's worker after the crash is pid %d, not one of the standbys %v", w.PID, sbs)
		}
		return w, time.Since(killed)
	}
	// The first crash of a count is restarted at once, standby or not.
	second, _ := replaced(first.PID, warmStandbys(2), 10*time.Second)

	// The second crash in a row, of a worker up for longer than its
	// back-off (at most 3 s): at once.
	sbs := warmStandbys(2)
	waitFor(t, 10*time.Second, "the promoted standby up for 3.2 s", func() bool {
		return d.app("web").Workers[0].Uptime >= 3.2
	})
	third, took := replaced(second.PID, sbs, 10*time.Second)
	if took > 1500*time.Millisecond {
		t.Fatalf("a worker that lived its back-off was replaced after %s: the standby waited", took.Round(time.Millisecond))
	}
	d.waitOutput("worker lived longer than its back-off; a standby takes the slot at once", 5*time.Second)
	t.Logf("crash in a row after the back-off's time replaced in %s", took.Round(time.Millisecond))

	// The third, at once: the slot waits out the rest of its back-off
	// (4 s at least) before a standby takes it.
	sbs = warmStandbys(2)
	fourth, took := replaced(third.PID, sbs, 15*time.Second)
	if took < 3*time.Second {
		t.Fatalf("a worker that died at once was replaced after %s: its back-off (at least 4 s) was not waited out", took.Round(time.Millisecond))
	}
	if fourth.Restarts != 3 {
		t.Errorf("restarts %d, want 3", fourth.Restarts)
	}
	t.Logf("crash in a row before the back-off's time replaced in %s", took.Round(time.Millisecond))
}

// TestRollWithFailingStandbys: a rolling restart of an app whose fresh
// standbys fail as they load falls back to starting processes as soon as
// the pool gives up on them, not after startTimeout.
func TestRollWithFailingStandbys(t *testing.T) {
	crash := filepath.Join(t.TempDir(), "crash")
	d := startStandbyFixture(t, 1, 1, map[string]any{"CRASH_LOAD": crash}, map[string]any{"startTimeout": 60000})
	first := d.waitReady("web", 30*time.Second).Workers[0]
	if err := os.WriteFile(crash, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if out, err := d.ctl("restart", "web"); err != nil {
		t.Fatalf("ctl restart web: %v\n%s", err, out)
	}
	took := time.Since(start)
	w := d.app("web").Workers[0]
	if w.State != "ready" || w.PID == first.PID {
		t.Fatalf("after the roll: %+v, want a new worker ready", w)
	}
	if took > 20*time.Second {
		t.Fatalf("the roll took %s: it waited for standbys the pool had given up on", took)
	}
	t.Logf("rolled in %s", took.Round(time.Millisecond))
}

// TestStandbyFailuresCountAfreshOnceOneWarms: the standby pool gives up
// after its start attempts fail in a row, not after failures scattered
// over the app's life: a standby that warms up in between starts the
// count again.
func TestStandbyFailuresCountAfreshOnceOneWarms(t *testing.T) {
	crash := filepath.Join(t.TempDir(), "crash")
	if err := os.WriteFile(crash, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	d := startStandbyFixture(t, 1, 1, map[string]any{"CRASH_LOAD": crash}, nil)
	first := d.waitReady("web", 30*time.Second).Workers[0]
	const failed = "standby worker exited; replacing it"
	waitFor(t, 20*time.Second, "three standbys failing", func() bool { return strings.Count(d.out.String(), failed) >= 3 })
	if err := os.Remove(crash); err != nil {
		t.Fatal(err)
	}
	warmStandby(t, d, "web")
	before := strings.Count(d.out.String(), failed)
	if err := os.WriteFile(crash, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// The warm standby takes the slot; its successors fail. Six in a row
	// give up, so the pool must get past four after the warm one.
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "four more standbys failing", func() bool {
		if strings.Contains(d.out.String(), "standby workers keep failing") {
			t.Fatalf("the pool gave up after %d failures since a standby warmed up", strings.Count(d.out.String(), failed)-before)
		}
		return strings.Count(d.out.String(), failed)-before >= 4
	})
}

// startStandbyFixture runs the standby fixture as the entrypoint "web"
// with workers and standby, its env, and top's keys at the top of
// watt.json.
func startStandbyFixture(t *testing.T, workers, standby int, env, top map[string]any) *daemon {
	t.Helper()
	integration(t)
	port := freePort(t)
	app := map[string]any{"id": "web", "path": fixture("apps/standby"), "workers": workers, "standby": standby}
	if env != nil {
		app["env"] = env
	}
	cfg := map[string]any{
		"entrypoint":   "web",
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{app},
	}
	for k, v := range top {
		cfg[k] = v
	}
	return startWattd(t, project(t, cfg), port, startOpts{})
}

// TestStandbyEarlyReadyIsIgnored: a standby that says "ready" before it
// is promoted (a worker lying on its control channel) is not believed;
// promoted, it becomes the slot's worker once it really listens.
func TestStandbyEarlyReadyIsIgnored(t *testing.T) {
	d := startStandbyFixture(t, 1, 1, map[string]any{"LIE_READY": "1"}, nil)
	first := d.waitReady("web", 30*time.Second).Workers[0]
	sb := warmStandby(t, d, "web")
	d.waitOutput("a standby said ready before it was promoted; ignoring it", 10*time.Second)
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	promotedInto(t, d, "web", sb.PID, 0, 20*time.Second)
	waitFor(t, 10*time.Second, "the promoted standby serving", func() bool {
		code, body, err := get(fresh, d.url("/"))
		return err == nil && code == http.StatusOK && body == fmt.Sprintf("pid=%d", sb.PID)
	})
}
