package supervisor

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/config"
)

func TestJudgeStats(t *testing.T) {
	r := healthRules{
		Health: config.Health{
			Enabled: true, Interval: time.Second, MaxUnhealthyChecks: 3,
			MaxELU: 0.95, MaxHeapUsed: 0.5, MaxHeapTotal: 100 << 20,
		},
		statsEvery: 500 * time.Millisecond,
	}
	now := time.Now()
	tests := []struct {
		name string
		st   ipc.Stats
		at   time.Time
		want string
	}{
		{"never reported: not judged", ipc.Stats{ELU: 1}, time.Time{}, ""},
		{"healthy", ipc.Stats{ELU: 0.5, HeapUsed: 10 << 20}, now, ""},
		{"elu at the limit passes", ipc.Stats{ELU: 0.95}, now, ""},
		{"elu above", ipc.Stats{ELU: 0.9999}, now, "elu 0.999 > 0.95"},
		{"heap is a fraction of maxHeapTotal", ipc.Stats{HeapUsed: 60 << 20, HeapTotal: 61 << 20}, now,
			"heap used 60MiB > 0.5 of maxHeapTotal 100MiB"},
		{"heap under half of maxHeapTotal passes, whatever heapTotal", ipc.Stats{HeapUsed: 40 << 20, HeapTotal: 41 << 20}, now, ""},
		{"both", ipc.Stats{ELU: 1, HeapUsed: 80 << 20}, now, "elu 1 > 0.95; heap used 80MiB > 0.5 of maxHeapTotal 100MiB"},
		{"a report within interval plus a stats period is fresh", ipc.Stats{}, now.Add(-1400 * time.Millisecond), ""},
		{"older is a worker that stopped reporting", ipc.Stats{ELU: 1}, now.Add(-1600 * time.Millisecond), "no stats in 1.6s"},
		{"unless its inspector is open", ipc.Stats{ELU: 1, Inspector: true}, now.Add(-1600 * time.Millisecond), ""},
	}
	for _, tt := range tests {
		if got := r.judgeStats(tt.st, tt.at, now); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestJudgeUnresponsive(t *testing.T) {
	r := healthRules{Health: config.Health{Enabled: true, MaxUnresponsive: 3 * time.Second}, statsEvery: time.Second}
	disabled := r
	disabled.Enabled = false
	now := time.Now()
	for _, tt := range []struct {
		name string
		r    healthRules
		st   ipc.Stats
		at   time.Time
		want string
	}{
		{"never reported: not judged", r, ipc.Stats{}, time.Time{}, ""},
		{"fresh", r, ipc.Stats{}, now.Add(-2900 * time.Millisecond), ""},
		{"silent longer", r, ipc.Stats{}, now.Add(-3100 * time.Millisecond), "unhealthy: no stats in 3.1s (maxUnresponsive 3s)"},
		{"inspector open: maybe at a breakpoint", r, ipc.Stats{Inspector: true}, now.Add(-time.Hour), ""},
		{"off", healthRules{Health: config.Health{Enabled: true}}, ipc.Stats{}, now.Add(-time.Hour), ""},
		{"health not checked", disabled, ipc.Stats{}, now.Add(-time.Hour), ""},
	} {
		if got := tt.r.judgeUnresponsive(tt.st, tt.at, now); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestHealthCountNeedsConsecutiveFailures(t *testing.T) {
	c := healthCount{max: 3}
	for i, cause := range []string{"a", "b", "", "c", "d"} {
		if v, bad := c.record(cause); bad {
			t.Fatalf("check %d: verdict %q before 3 failures in a row", i, v)
		}
	}
	v, bad := c.record("elu 1 > 0.95")
	if !bad || v != "unhealthy: elu 1 > 0.95 for 3 checks" {
		t.Fatalf("got %q, %v", v, bad)
	}
}

func TestStatsEveryFollowsTheHealthInterval(t *testing.T) {
	h := config.Health{Enabled: true, Interval: 200 * time.Millisecond}
	every, env := statsEveryFor(h, []string{"A=1"})
	if every != 200*time.Millisecond || !slices.Equal(env, []string{"A=1", "WATTD_STATS_INTERVAL_MS=200"}) {
		t.Errorf("default period: got %s %q", every, env)
	}
	every, env = statsEveryFor(h, []string{"WATTD_STATS_INTERVAL_MS=5000", "B=2"})
	if every != 200*time.Millisecond || !slices.Equal(env, []string{"B=2", "WATTD_STATS_INTERVAL_MS=200"}) {
		t.Errorf("longer period set: got %s %q", every, env)
	}
	every, env = statsEveryFor(h, []string{"WATTD_STATS_INTERVAL_MS=50"})
	if every != 50*time.Millisecond || !slices.Equal(env, []string{"WATTD_STATS_INTERVAL_MS=50"}) {
		t.Errorf("shorter period set: got %s %q", every, env)
	}
	// A third of maxUnresponsive, when that is shorter.
	h.MaxUnresponsive = 300 * time.Millisecond
	every, env = statsEveryFor(h, []string{"A=1"})
	if every != 100*time.Millisecond || !slices.Equal(env, []string{"A=1", "WATTD_STATS_INTERVAL_MS=100"}) {
		t.Errorf("maxUnresponsive 300ms: got %s %q", every, env)
	}
	h.Interval, h.MaxUnresponsive = 30*time.Second, 30*time.Second
	every, env = statsEveryFor(h, []string{"WATTD_STATS_INTERVAL_MS=60000"})
	if every != 10*time.Second || !slices.Equal(env, []string{"WATTD_STATS_INTERVAL_MS=10000"}) {
		t.Errorf("a period longer than a third of maxUnresponsive: got %s %q", every, env)
	}
	h.Enabled = false
	every, env = statsEveryFor(h, []string{"A=1"})
	if every != 2*time.Second || !slices.Equal(env, []string{"A=1"}) {
		t.Errorf("health disabled: got %s %q", every, env)
	}
}

// fastHealth are short health timings for tests.
func fastHealth(path string) config.Health {
	return config.Health{
		Enabled: true, Interval: 200 * time.Millisecond, GracePeriod: 500 * time.Millisecond,
		MaxUnhealthyChecks: 3, MaxELU: 0.95, MaxHeapUsed: 0.99, MaxHeapTotal: 4 << 30,
		Path: path, Timeout: time.Second,
	}
}

func withHealth(h config.Health) func(*config.Config) {
	return func(c *config.Config) {
		for i := range c.Applications {
			c.Applications[i].Health = h
		}
		c.GracefulShutdown.Application = time.Second
	}
}

// waitReplaced waits until the slot's worker is a ready process other than
// pid and returns its status.
func (tr *liveRuntime) waitReplaced(app string, i, pid int) WorkerStatus {
	tr.t.Helper()
	s := tr.slot(app, i)
	var ws WorkerStatus
	eventually(tr.t, app+" worker replaced", func() bool {
		ws = s.status()
		return ws.State == "ready" && ws.PID > 0 && ws.PID != pid
	})
	return ws
}

// current is the slot's worker; a test only calls it while one runs.
func (s *slot) current() worker {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// stays checks for a while that cond keeps holding: how a test tells that
// something does not happen.
func stays(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if !cond() {
			t.Fatalf("%s changed", what)
		}
	}
}

func TestUnhealthyELUWorkerIsReplaced(t *testing.T) {
	tr := startRuntime(t, withHealth(fastHealth("")),
		testApp{id: "hot", behaviour: "elu:1,elu:0.1"},
		testApp{id: "quiet", behaviour: "no-protocol"})
	first := tr.waitReady("hot", 0)
	quiet := tr.waitReady("quiet", 0)

	ws := tr.waitReplaced("hot", 0, first.PID)
	want := "unhealthy: elu 1 > 0.95 for 3 checks"
	if ws.LastExit != want || ws.Restarts != 1 {
		t.Errorf("status after the replacement: lastExit %q restarts %d, want %q and 1", ws.LastExit, ws.Restarts, want)
	}
	if !tr.logged("worker unhealthy; replacing it", map[string]any{"pid": int64(first.PID), "reason": want}) {
		t.Error("no warning with the reason")
	}
	eventually(t, "the unhealthy worker gone", func() bool { return !alive(first.PID) })

	// The replacement reports healthy stats at the period wattd gave it
	// (200 ms, not the default 2 s, which would look stale to every check),
	// and the worker without the protocol reports none: neither is
	// replaced, over more than the grace period plus maxUnhealthyChecks.
	reports := map[time.Time]bool{}
	stays(t, "the healthy workers", 2*time.Second, func() bool {
		if _, at := tr.slot("hot", 0).current().Stats(); !at.IsZero() {
			reports[at] = true
		}
		return len(tr.starts("hot")) == 2 && len(tr.starts("quiet")) == 1
	})
	if len(reports) < 5 {
		t.Errorf("%d stats reports in 2 s, want one every 200 ms", len(reports))
	}
	if st := tr.slot("quiet", 0).status(); st.PID != quiet.PID {
		t.Errorf("the worker without stats was replaced: pid %d, was %d", st.PID, quiet.PID)
	}
}

func TestHeapAboveTheFractionOfMaxHeapTotalIsUnhealthy(t *testing.T) {
	h := fastHealth("")
	h.MaxHeapTotal, h.MaxHeapUsed = 100<<20, 0.5
	tr := startRuntime(t, withHealth(h), testApp{id: "fat", behaviour: "heap:62914560,heap:1048576"})
	first := tr.waitReady("fat", 0)
	ws := tr.waitReplaced("fat", 0, first.PID)
	if want := "unhealthy: heap used 60MiB > 0.5 of maxHeapTotal 100MiB for 3 checks"; ws.LastExit != want {
		t.Errorf("lastExit %q, want %q", ws.LastExit, want)
	}
}

func TestWorkerThatStopsReportingIsReplaced(t *testing.T) {
	tr := startRuntime(t, withHealth(fastHealth("")),
		testApp{id: "api", workers: 2, behaviour: "mute-after:300ms,elu:0.1"})
	a := tr.waitReady("api", 0)
	b := tr.waitReady("api", 1)
	starts := tr.starts("api")
	// Each slot's first worker plays the stuck one; the first to start
	// is the generation that mutes. Only it must be replaced.
	stuckSlot, stuck, other := 0, a, b
	if starts[0] == strconv.Itoa(b.PID) {
		stuckSlot, stuck, other = 1, b, a
	}

	// While it is stuck and before it is replaced, wattd answers at
	// once, and the other worker serves.
	eventually(t, "the stuck worker's stats going stale", func() bool {
		_, at := tr.slot("api", stuckSlot).current().Stats()
		return !at.IsZero() && time.Since(at) > 500*time.Millisecond
	})
	begin := time.Now()
	if _, err := tr.App("api"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d > time.Second {
		t.Errorf("status took %s while a worker was stuck", d)
	}
	if st := tr.slot("api", 1-stuckSlot).status(); st.PID != other.PID || st.State != "ready" {
		t.Errorf("the other worker: %+v", st)
	}

	ws := tr.waitReplaced("api", stuckSlot, stuck.PID)
	if !strings.HasPrefix(ws.LastExit, "unhealthy: no stats in ") || !strings.HasSuffix(ws.LastExit, " for 3 checks") {
		t.Errorf("lastExit %q", ws.LastExit)
	}
	// It ignores drain and SIGTERM: killed after the grace.
	eventually(t, "the stuck worker gone", func() bool { return !alive(stuck.PID) })
	if st := tr.slot("api", 1-stuckSlot).status(); st.PID != other.PID {
		t.Errorf("the other worker was replaced too: %+v", st)
	}
}

// TestFailingProbeReplacesWorker: the probe reaches the worker on its
// mesh socket, whether the worker holds that socket or listens on $PORT
// behind wattd's forwarder.
func TestFailingProbeReplacesWorker(t *testing.T) {
	for _, fronted := range []bool{false, true} {
		t.Run(map[bool]string{false: "passed sockets", true: "fronted"}[fronted], func(t *testing.T) {
			tr := startRuntime(t, withHealth(fastHealth("/health")), testApp{id: "web", behaviour: "probe:500,probe:204", fronted: fronted})
			first := tr.waitReady("web", 0)
			ws := tr.waitReplaced("web", 0, first.PID)
			if want := "unhealthy: probe GET /health: status 500 for 3 checks"; ws.LastExit != want {
				t.Errorf("lastExit %q, want %q", ws.LastExit, want)
			}
			stays(t, "the worker whose probe answers 204", 1500*time.Millisecond, func() bool { return len(tr.starts("web")) == 2 })
		})
	}
}

func TestProbeTimeoutFailsTheCheck(t *testing.T) {
	h := fastHealth("/health")
	h.Timeout = 150 * time.Millisecond
	// The stuck worker's stats go stale too; the probe's cause comes
	// after theirs.
	tr := startRuntime(t, withHealth(h), testApp{id: "web", behaviour: "mute-after:200ms,probe:200"})
	first := tr.waitReady("web", 0)
	ws := tr.waitReplaced("web", 0, first.PID)
	if !strings.HasSuffix(ws.LastExit, "; probe GET /health: no answer within 150ms for 3 checks") {
		t.Errorf("lastExit %q", ws.LastExit)
	}
}

func TestFailedReplacementKeepsTheUnhealthyWorker(t *testing.T) {
	tr := startRuntime(t, withHealth(fastHealth("")), testApp{id: "hot", behaviour: "elu:1,crash:3"})
	first := tr.waitReady("hot", 0)
	failed := func() int {
		return tr.logs.FilterMessage("could not replace the unhealthy worker; it keeps serving").Len()
	}
	eventually(t, "two failed replacements", func() bool { return failed() >= 2 })
	st := tr.slot("hot", 0).status()
	if st.PID != first.PID || st.State != "ready" {
		t.Errorf("the old worker should keep serving: %+v", st)
	}
	if _, err := tr.get("/"); err != nil {
		t.Errorf("request to the old worker: %v", err)
	}
	// No tight loop: each attempt waits for the grace period and three
	// failed checks again.
	attempts := tr.logs.FilterMessage("worker unhealthy; replacing it").All()
	gap := attempts[1].Time.Sub(attempts[0].Time)
	if min := 500*time.Millisecond + 3*200*time.Millisecond; gap < min {
		t.Errorf("second attempt %s after the first, want at least %s", gap, min)
	}
}

// TestEventLoopDelayIsJudged: with maxEventLoopDelay set, a worker whose
// reported delay peaks above it is replaced, the cause naming the peak;
// the replacement, under the limit, stays. maxEventLoopDelayP99 judges
// the p99 the same way.
func TestEventLoopDelayIsJudged(t *testing.T) {
	for _, tc := range []struct {
		maxDelay, p99 time.Duration
		behaviour     string // reports peaking at D, p99 D/2
		want          string
	}{
		{100 * time.Millisecond, 0, "lag:300ms,lag:50ms", "unhealthy: event-loop delay max 300ms > 100ms for 3 checks"},
		{0, 100 * time.Millisecond, "lag:300ms,lag:150ms", "unhealthy: event-loop delay p99 150ms > 100ms for 3 checks"},
	} {
		h := fastHealth("")
		h.MaxEventLoopDelay, h.MaxEventLoopDelayP99 = tc.maxDelay, tc.p99
		tr := startRuntime(t, withHealth(h), testApp{id: "slow", behaviour: tc.behaviour})
		first := tr.waitReady("slow", 0)
		if ws := tr.waitReplaced("slow", 0, first.PID); ws.LastExit != tc.want {
			t.Errorf("lastExit %q, want %q", ws.LastExit, tc.want)
		}
		stays(t, "the replacement under the limit", 1500*time.Millisecond, func() bool { return len(tr.starts("slow")) == 2 })
	}
}

// TestJudgeDelay: the peak since the last check against each limit, and
// nothing to judge without a report that carried the delay.
func TestJudgeDelay(t *testing.T) {
	r := healthRules{Health: config.Health{MaxEventLoopDelay: 100 * time.Millisecond, MaxEventLoopDelayP99: 50 * time.Millisecond}}
	for _, tt := range []struct {
		max, p99 float64
		ok       bool
		want     string
	}{
		{0.5, 0.4, false, ""},
		{0.1, 0.05, true, ""},
		{0.1004, 0.03, true, "event-loop delay max 100.4ms > 100ms"},
		{0.25, 0.06, true, "event-loop delay max 250ms > 100ms; event-loop delay p99 60ms > 50ms"},
		{1e300, -1, true, "event-loop delay max 277h46m40s > 100ms"},
	} {
		if got := r.judgeDelay(tt.max, tt.p99, tt.ok); got != tt.want {
			t.Errorf("judgeDelay(%v, %v, %v) = %q, want %q", tt.max, tt.p99, tt.ok, got, tt.want)
		}
	}
}

// TestSlowProbeDoesNotHoldUpMaxUnresponsive: a worker that stops while
// the app's probe waits on it, up to a long health timeout, is still
// replaced maxUnresponsive after its last report: the probe runs beside
// the watch on the reports, not in its way (a stopped worker behind a
// probe with a 15 s timeout kept its slot for minutes).
func TestSlowProbeDoesNotHoldUpMaxUnresponsive(t *testing.T) {
	h := fastHealth("/health")
	h.Timeout = 20 * time.Second
	h.MaxUnhealthyChecks = 100
	h.MaxUnresponsive = time.Second
	tr := startRuntime(t, withHealth(h), testApp{id: "web", behaviour: "mute-after:300ms,probe:200"})
	first := tr.waitReady("web", 0)
	ws := tr.waitReplaced("web", 0, first.PID)
	if !strings.Contains(ws.LastExit, "(maxUnresponsive 1s)") {
		t.Errorf("lastExit %q, want the maxUnresponsive verdict", ws.LastExit)
	}
	// The verdict came about a second after the last report, well
	// within the probe's timeout.
	for _, e := range tr.logs.FilterMessageSnippet("unhealthy").All() {
		if r, _ := e.ContextMap()["reason"].(string); strings.Contains(r, "no stats in") {
			if i := strings.Index(r, "no stats in "); i >= 0 {
				d, err := time.ParseDuration(strings.Fields(r[i+len("no stats in "):])[0])
				if err == nil && d > 5*time.Second {
					t.Errorf("replaced %s after the last report: %q", d, r)
				}
			}
		}
	}
}
