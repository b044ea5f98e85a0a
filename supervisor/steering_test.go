package supervisor

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor/config"
)

// TestSlotInBackoffTakesNoConnections: while an entrypoint slot backs off
// after its second crash in a row, and until its next worker is ready
// (here one that takes 3 s to start), new connections go to the slot that
// serves instead of waiting in the crashed slot's queue; once the slot
// serves again, it takes connections again.
func TestSlotInBackoffTakesNoConnections(t *testing.T) {
	// Both crashes must count as a crash loop however long the loaded
	// machine takes to start the workers: their uptimes run from spawn,
	// and a start of 900 ms once made the second one's 1.2 s pass the
	// harness's 1 s resetAfter, so nothing backed off.
	tr := startRuntime(t, func(c *config.Config) { c.Restart.ResetAfter = 30 * time.Second },
		testApp{id: "web", entry: true, workers: 2,
			behaviour: "ready,crash-after:500ms,crash-after:300ms,hello-after:3s"})
	crashed, serving := firstToRestart(t, tr, "web", 2)
	// The back-off's log line comes once the slot is steered around.
	eventually(t, "the worker to back off", func() bool {
		return tr.logged("restarting worker after backoff", map[string]any{"app": "web"})
	})
	survivor := serving.status().PID
	// A new connection per request, each from another source port, and a
	// deadline far shorter than the replacement's start.
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	// A few hundred connections prove it; ten thousand add nothing.
	served := servedDuringGap(t, tr.URL()+"/", crashed, survivor, 2*time.Millisecond, c)
	t.Logf("%d requests while the slot had no worker, all answered by worker %d", served, survivor)
	next := crashed.status().PID
	eventually(t, "the replacement to take connections again", func() bool {
		body, err := getBody(c, tr.URL()+"/")
		return err == nil && strings.HasPrefix(body, byPID(next))
	})
}

// firstToRestart waits for app's two slots to be ready, then for one of
// them to have restarted n times, and returns it and the other.
func firstToRestart(t *testing.T, tr *liveRuntime, app string, n int) (crashed, other *slot) {
	t.Helper()
	tr.waitReady(app, 0)
	tr.waitReady(app, 1)
	eventually(t, fmt.Sprintf("a worker of %s to have restarted %d time(s)", app, n), func() bool {
		for i, o := range []int{1, 0} {
			if tr.slot(app, i).status().Restarts == n {
				crashed, other = tr.slot(app, i), tr.slot(app, o)
				return true
			}
		}
		return false
	})
	return crashed, other
}

// servedDuringGap makes requests with each client in turn, pause apart,
// until the crashed slot is ready again, and fails the test unless every
// one was answered by the surviving worker and there were at least 10.
// It returns how many there were.
func servedDuringGap(t *testing.T, url string, crashed *slot, survivor int, pause time.Duration, clients ...*http.Client) int {
	t.Helper()
	served := 0
	for crashed.getState() != StateReady {
		for _, c := range clients {
			body, err := getBody(c, url)
			if crashed.getState() == StateReady {
				break // the replacement may have answered
			}
			if err != nil {
				t.Fatalf("request %d while the slot had no worker: %v", served+1, err)
			}
			if !strings.HasPrefix(body, byPID(survivor)) {
				t.Fatalf("request %d while the slot had no worker answered %q, not by the serving worker %d", served+1, body, survivor)
			}
			served++
		}
		time.Sleep(pause)
	}
	if served < 10 {
		t.Fatalf("only %d requests during the gap; the test proves nothing", served)
	}
	return served
}

// TestImmediateRestartIsSteeredAroundAndShed: when an entrypoint worker
// dies and its slot restarts it at once (no back-off, no standby), new
// connections go to the slot that serves until the replacement is ready
// (here one that takes 3 s to start); then the serving worker sheds its
// connections, so that a client kept alive on it meanwhile connects again
// (without a failed request) and the replacement gets its share.
func TestImmediateRestartIsSteeredAroundAndShed(t *testing.T) {
	tr := startRuntime(t, nil, testApp{id: "web", entry: true, workers: 2,
		behaviour: "ready,crash-after:1s,hello-after:3s"})
	crashed, serving := firstToRestart(t, tr, "web", 1)
	survivor := serving.status().PID
	var dials atomic.Int64
	kept := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		MaxConnsPerHost: 1,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
	fresh := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	served := servedDuringGap(t, tr.URL()+"/", crashed, survivor, 5*time.Millisecond, fresh, kept)
	if tr.logged("restarting worker after backoff", map[string]any{"app": "web"}) {
		t.Fatal("the slot backed off; this test is about an immediate restart")
	}
	before := dials.Load()
	t.Logf("%d requests while the slot had no worker, all answered by worker %d over %d connection(s) kept alive", served, survivor, before)
	eventually(t, "the kept-alive client to connect again", func() bool {
		if _, err := getBody(kept, tr.URL()+"/"); err != nil {
			t.Fatalf("request on the kept-alive client after the slot served again: %v", err)
		}
		return dials.Load() > before
	})
	next := crashed.status().PID
	eventually(t, "the replacement to take connections", func() bool {
		body, err := getBody(fresh, tr.URL()+"/")
		return err == nil && strings.HasPrefix(body, byPID(next))
	})
}

// TestNoSlotServingSteersToFirstBack: when every entrypoint slot has lost
// its worker, new connections wait at the slot whose next worker started
// first, not half of them at a slot whose worker died later (here the
// first replacement takes 2 s to start and the second 4 s): each is
// answered by the first replacement, as soon as it is ready.
func TestNoSlotServingSteersToFirstBack(t *testing.T) {
	tr := startRuntime(t, func(c *config.Config) { c.Restart.ResetAfter = 100 * time.Millisecond },
		testApp{id: "web", entry: true, workers: 2,
			behaviour: "crash-after:1s,crash-after:1500ms,hello-after:2s,hello-after:4s,ready"})
	first, second := firstToRestart(t, tr, "web", 1)
	eventually(t, "the other worker to crash", func() bool { return second.status().Restarts == 1 })
	if first.getState() == StateReady || second.getState() == StateReady {
		t.Fatal("a replacement was ready already; the test proves nothing")
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	type answer struct {
		body string
		err  error
	}
	answers := make(chan answer)
	const n = 16
	for range n {
		go func() {
			body, err := getBody(c, tr.URL()+"/")
			answers <- answer{body, err}
		}()
	}
	got := make([]answer, n)
	for i := range got {
		got[i] = <-answers
	}
	next := first.status().PID
	for i, a := range got {
		if a.err != nil {
			t.Fatalf("request %d while no slot served: %v", i, a.err)
		}
		if !strings.HasPrefix(a.body, byPID(next)) {
			t.Errorf("request %d while no slot served answered %q, not by the first replacement %d", i, a.body, next)
		}
	}
}

// TestQueuedConnectionsOfADeadSlotAreRelayed: connections that the kernel
// queued on a slot's socket before wattd knew its worker was gone (here a
// worker that stopped accepting a second before it crashed without a word)
// are relayed to the slot that serves, not left waiting for the slot's
// replacement, which takes 4 s to start.
func TestQueuedConnectionsOfADeadSlotAreRelayed(t *testing.T) {
	tr := startRuntime(t, nil, testApp{id: "web", entry: true, workers: 2,
		behaviour: "deaf-crash-after:1s,ready,hello-after:4s,ready"})
	tr.waitReady("web", 0)
	tr.waitReady("web", 1)
	type result struct {
		body string
		err  error
		took time.Duration
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	results := make(chan result, 1000)
	n := 0
	// A new connection every 20 ms until the crash, some of them queued
	// on the deaf worker's socket for up to a second.
	crashed := func() bool { return tr.slot("web", 0).status().Restarts+tr.slot("web", 1).status().Restarts > 0 }
	deadline := time.Now().Add(pollFor)
	for !crashed() {
		if time.Now().After(deadline) {
			t.Fatal("no worker crashed")
		}
		n++
		go func() {
			start := time.Now()
			body, err := getBody(c, tr.URL()+"/")
			results <- result{body, err, time.Since(start)}
		}()
		time.Sleep(20 * time.Millisecond)
	}
	survivor := tr.slot("web", 0)
	if survivor.status().Restarts > 0 {
		survivor = tr.slot("web", 1)
	}
	queued := 0
	for range n {
		r := <-results
		if r.err != nil {
			t.Errorf("request: %v", r.err)
			continue
		}
		if r.took > 300*time.Millisecond {
			queued++
			if !strings.HasPrefix(r.body, byPID(survivor.status().PID)) {
				t.Errorf("a queued request was answered %q, not by the serving worker %d", r.body, survivor.status().PID)
			}
		}
		if r.took > 2500*time.Millisecond {
			t.Errorf("a request took %v: it waited for the replacement", r.took)
		}
	}
	if queued == 0 {
		t.Fatalf("none of %d requests was queued on the deaf worker's socket; the test proves nothing", n)
	}
	t.Logf("%d of %d requests were queued on the deaf worker's socket, and relayed", queued, n)
	eventually(t, "the relays to be logged", func() bool {
		return tr.logged("relayed connections that were queued on the slot's socket while it had no worker", map[string]any{"app": "web"})
	})
}

// TestScaleDownWaitsForAKeptWorker: a scale down that would take away the
// only ready worker, the slot it keeps having lost its worker (here the
// replacement takes 3 s to start), waits for the kept slot to be ready
// first: meanwhile the worker going away answers every request.
func TestScaleDownWaitsForAKeptWorker(t *testing.T) {
	// The worker that crashes says so only once it knows its slot: the
	// slot that stays, 0.
	tr := startRuntime(t, nil,
		testApp{id: "web", entry: true, workers: 2, behaviour: "crash-after-if-0:1s,crash-after-if-0:1s,hello-after:3s,ready"})
	crashed, serving := firstToRestart(t, tr, "web", 1)
	if crashed != tr.slot("web", 0) {
		t.Fatalf("worker %d crashed; the test needs the kept slot 0 to", crashed.index)
	}
	survivor := serving.status().PID
	scaled := make(chan error, 1)
	go func() { scaled <- tr.ScaleApp(context.Background(), "web", 1) }()
	fresh := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	served := servedDuringGap(t, tr.URL()+"/", crashed, survivor, 5*time.Millisecond, fresh)
	t.Logf("%d requests while the kept slot had no worker, all answered by the worker going away", served)
	if err := <-scaled; err != nil {
		t.Fatal(err)
	}
	if n := len(tr.appList()[0].slotList()); n != 1 {
		t.Fatalf("%d slots after the scale down, want 1", n)
	}
}
