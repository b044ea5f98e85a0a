package supervisor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/config"
)

// Health checks (Watt's "health" keys). A watcher goroutine per ready
// worker judges it every interval, from the stats the worker reports on
// its control channel, when the app has a probe path from an HTTP GET on
// the worker's own mesh socket, and when the app registered a custom
// health check (setCustomHealthCheck) from that check's answer. After maxUnhealthyChecks failed checks
// in a row it hands its verdict to the slot's owner goroutine and ends; the
// owner replaces the worker (slot.replace: start new, wait until ready,
// drain and stop old). The watcher only reads: the worker's state machine
// stays with its owner, and a stuck worker or a slow probe blocks the
// watcher alone, never the owner.

// defaultStatsEvery is how often the Node preload and the static file
// worker report stats unless WATTD_STATS_INTERVAL_MS says otherwise.
const defaultStatsEvery = 2 * time.Second

// envStatsInterval is read by the worker side of the protocol.
const envStatsInterval = "WATTD_STATS_INTERVAL_MS"

// healthRules is an application's health settings as its watchers apply
// them.
type healthRules struct {
	config.Health
	// statsEvery is how often the app's workers report stats: never more
	// than Interval (see statsEveryFor), so every check can expect a
	// report newer than the previous check.
	statsEvery time.Duration
}

// statsEveryFor returns the stats period of a worker whose environment is
// env, and env with WATTD_STATS_INTERVAL_MS lowered to the health interval
// (and to a third of maxUnresponsive) when the period would be longer: a
// check would otherwise find the stats it judges older than the last
// check, and take a healthy worker for a stuck one.
func statsEveryFor(h config.Health, env []string) (time.Duration, []string) {
	every := defaultStatsEvery
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, envStatsInterval+"="); ok {
			if ms, err := strconv.Atoi(v); err == nil && ms > 0 {
				every = time.Duration(ms) * time.Millisecond
			}
		}
	}
	limit := h.Interval
	if h.MaxUnresponsive > 0 {
		limit = min(limit, h.MaxUnresponsive/3)
	}
	if !h.Enabled || every <= limit {
		return every, env
	}
	every = limit
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, envStatsInterval+"=") {
			out = append(out, kv)
		}
	}
	return every, append(out, envStatsInterval+"="+strconv.FormatInt(every.Milliseconds(), 10))
}

// noStats begins the cause of a worker that stopped reporting stats.
const noStats = "no stats in "

// judgeStats returns why a check fails on the worker's last stats, taken
// at at, or "" when they pass. A worker that never reported stats (one that
// does not speak the protocol, or does not measure itself) is not judged
// by them. Stats older than the interval plus one stats period mean the
// worker stopped reporting: its event loop is stuck, and the values it
// last sent say nothing about now.
func (r healthRules) judgeStats(st ipc.Stats, at, now time.Time) string {
	if at.IsZero() {
		return ""
	}
	if age := now.Sub(at); age > r.Interval+r.statsEvery {
		if st.Inspector {
			return ""
		}
		return noStats + age.Round(10*time.Millisecond).String()
	}
	var causes []string
	if st.ELU > r.MaxELU {
		causes = append(causes, fmt.Sprintf("elu %s > %s", ratio(st.ELU), ratio(r.MaxELU)))
	}
	// Watt's reading: maxHeapUsed is a fraction of maxHeapTotal, not of
	// the heap V8 has reserved at the moment.
	if r.MaxHeapTotal > 0 && float64(st.HeapUsed) > r.MaxHeapUsed*float64(r.MaxHeapTotal) {
		causes = append(causes, fmt.Sprintf("heap used %s > %s of maxHeapTotal %s",
			bytesText(st.HeapUsed), ratio(r.MaxHeapUsed), bytesText(r.MaxHeapTotal)))
	}
	return strings.Join(causes, "; ")
}

// judgeUnresponsive returns why a worker whose last stats, taken at at,
// are older than maxUnresponsive must be replaced at once, or "". Not
// judged: workers of an app whose health is not checked (their stats
// period is not kept under maxUnresponsive), a worker that never
// reported, and one whose inspector was open (a debugger may be holding
// it at a breakpoint).
func (r healthRules) judgeUnresponsive(st ipc.Stats, at, now time.Time) string {
	if !r.Enabled || r.MaxUnresponsive <= 0 || at.IsZero() || st.Inspector {
		return ""
	}
	if age := now.Sub(at); age > r.MaxUnresponsive {
		return fmt.Sprintf("unhealthy: %s%s (maxUnresponsive %s)", noStats, age.Round(time.Millisecond), r.MaxUnresponsive)
	}
	return ""
}

// judgeDelay returns why a check fails on the event-loop delay the worker
// reported since the previous check (seconds; ok false when no report
// carried it), or "" when it passes, as Watt judges maxEventLoopDelay and
// maxEventLoopDelayP99: the longest delay, and the highest p99 of the
// stats periods.
func (r healthRules) judgeDelay(maxDelay, p99 float64, ok bool) string {
	if !ok {
		return ""
	}
	// Bounded: Go's conversion of an out-of-range float to an integer is
	// implementation-defined (on amd64, the smallest int64), so a worker
	// reporting nonsense (1e300) would otherwise pass as a negative delay.
	secs := func(s float64) time.Duration { return time.Duration(min(max(s, 0), 1e6) * float64(time.Second)) }
	var causes []string
	if lim := r.MaxEventLoopDelay; lim > 0 && secs(maxDelay) > lim {
		causes = append(causes, fmt.Sprintf("event-loop delay max %s > %s", secs(maxDelay).Round(100*time.Microsecond), lim))
	}
	if lim := r.MaxEventLoopDelayP99; lim > 0 && secs(p99) > lim {
		causes = append(causes, fmt.Sprintf("event-loop delay p99 %s > %s", secs(p99).Round(100*time.Microsecond), lim))
	}
	return strings.Join(causes, "; ")
}

// ratio prints a fraction with at most three decimals, cut rather than
// rounded so that a value just above a limit never prints as equal to it
// or above 1.
func ratio(f float64) string {
	return strconv.FormatFloat(math.Floor(f*1000)/1000, 'f', -1, 64)
}

// bytesText prints a size in binary units.
func bytesText(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + "B"
	}
	f, exp := float64(n), 0
	for f >= unit && exp < 4 {
		f /= unit
		exp++
	}
	return strconv.FormatFloat(math.Floor(f*10)/10, 'f', -1, 64) + []string{"", "KiB", "MiB", "GiB", "TiB"}[exp]
}

// healthCount counts consecutive failed checks.
type healthCount struct {
	max    int
	failed int
}

// record takes one check's outcome (a cause, or "" when it passed) and
// returns the verdict once max checks in a row failed.
func (c *healthCount) record(cause string) (verdict string, unhealthy bool) {
	if cause == "" {
		c.failed = 0
		return "", false
	}
	c.failed++
	if c.failed < c.max {
		return "", false
	}
	return fmt.Sprintf("unhealthy: %s for %d checks", cause, c.failed), true
}

// healthWatch is the watcher of one worker.
type healthWatch struct {
	verdict chan string // receives at most one verdict
	cancel  context.CancelFunc
	done    chan struct{}
}

// unhealthy is where the owner hears the verdict; nil (never ready) for
// a worker that is not watched.
func (h *healthWatch) unhealthy() <-chan string {
	if h == nil {
		return nil
	}
	return h.verdict
}

// stop ends the watcher and waits for it, so that no probe of it is in
// flight when the owner goes on.
func (h *healthWatch) stop() {
	if h == nil {
		return
	}
	h.cancel()
	<-h.done
}

// watchHealth starts watching w, which just became ready (or survived a
// failed replacement): the first check comes gracePeriod plus interval
// from now. It returns nil when the app's workers are not judged.
func (s *slot) watchHealth(w worker) *healthWatch {
	r := s.app.sp().health
	if !r.Enabled || !s.app.sp().policy.Enabled {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &healthWatch{verdict: make(chan string, 1), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		s.healthLoop(ctx, w, r, h.verdict)
	}()
	return h
}

func (s *slot) healthLoop(ctx context.Context, w worker, r healthRules, verdict chan<- string) {
	var probe *prober
	if r.Path != "" {
		probe = newProber(s.meshPath, s.app.id, r.Path, r.Timeout)
	}
	count := healthCount{max: r.MaxUnhealthyChecks}
	t := time.NewTimer(r.GracePeriod)
	defer t.Stop()
	// The unresponsive rule applies from readiness on: gracePeriod is for
	// a worker warming up, and one whose loop stopped answering is not
	// warming up. Its timer is set for the moment the last report will be
	// maxUnresponsive old, so that a worker that reports costs wattd one
	// wake-up per maxUnresponsive, not one per report.
	var alive <-chan time.Time
	var aliveT *time.Timer
	var due time.Time
	setAlive := func(d time.Duration) {
		due = time.Now().Add(d)
		aliveT.Reset(d)
	}
	if r.MaxUnresponsive > 0 {
		aliveT = time.NewTimer(r.MaxUnresponsive)
		due = time.Now().Add(r.MaxUnresponsive)
		defer aliveT.Stop()
		alive = aliveT.C
	}
	// The accept queues are judged under the same limit, from readiness
	// on (acceptwatch.go).
	var queues <-chan time.Time
	var queueT *time.Timer
	qw := queueWatch{every: queueEvery(r.MaxUnresponsive, r.statsEvery)}
	if r.MaxUnresponsive > 0 {
		queueT = time.NewTimer(untilNextMultiple(time.Now(), qw.every))
		defer queueT.Stop()
		queues = queueT.C
	}
	graced := false
	// The app's probe and its own check wait for the worker, up to the
	// health timeout: they run beside this loop, which goes on watching
	// the reports and the accept queues meanwhile, so that a worker that
	// stops while one of them waits is still replaced maxUnresponsive
	// after its last report. One at a time: the next check waits for it.
	checkCtx, cancelChecks := context.WithCancel(ctx)
	defer cancelChecks()
	var waiting <-chan []string // the check in progress; nil when none
	var causes []string         // of that check, judged before it
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.Exited():
			return
		case more := <-waiting:
			waiting = nil
			if ctx.Err() != nil {
				return
			}
			causes = append(causes, more...)
			cause := strings.Join(causes, "; ")
			if cause != "" {
				s.log.Debug("health check failed", zap.Int("pid", w.PID()), zap.String("cause", cause))
			}
			if v, bad := count.record(cause); bad {
				verdict <- v // buffered, and this watcher's only send
				return
			}
			t.Reset(r.Interval)
			continue
		case <-queues:
			now := time.Now()
			if v := s.judgeQueues(w, r, &qw, now); v != "" {
				verdict <- v // buffered, and this watcher's only send
				return
			}
			queueT.Reset(untilNextMultiple(now, qw.every))
			continue
		case <-alive:
			st, at := w.Stats()
			now := time.Now()
			if now.Sub(due) > time.Second {
				// The timer fired late: wattd itself did not run (stopped,
				// frozen with its cgroup, starved), and the reports the
				// workers sent meanwhile wait unread in their sockets.
				// Judging now would take every worker for a stuck one;
				// look again once they have been read.
				setAlive(r.statsEvery + time.Second)
				continue
			}
			if v := r.judgeUnresponsive(st, at, now); v != "" {
				verdict <- v // buffered, and this watcher's only send
				return
			}
			next := r.MaxUnresponsive // never reported, or its inspector is open
			if !at.IsZero() && !st.Inspector {
				next = at.Add(r.MaxUnresponsive).Sub(now) + time.Millisecond
			}
			setAlive(max(next, 10*time.Millisecond))
			continue
		case <-t.C:
		}
		if !graced {
			// The event-loop delay sampled while the worker warmed up is
			// not judged; the first check comes one interval later.
			graced = true
			w.TakeDelayPeak()
			t.Reset(r.Interval)
			continue
		}
		st, at := w.Stats()
		causes = []string{}
		c := r.judgeStats(st, at, time.Now())
		if c != "" {
			causes = append(causes, c)
		}
		// Not the app's own check of a worker that stopped reporting: its
		// event loop cannot answer either, and waiting out the timeout at
		// every check would only delay the verdict.
		stuck := strings.HasPrefix(c, noStats)
		if r.JudgesDelay() {
			if c := r.judgeDelay(w.TakeDelayPeak()); c != "" {
				causes = append(causes, c)
			}
		}
		result := make(chan []string, 1) // never blocks the check's goroutine
		waiting = result
		go func() {
			var more []string
			if probe != nil {
				if c := probe.check(checkCtx); c != "" {
					more = append(more, c)
				}
			}
			if !stuck {
				if c := checkCause(checkCtx, w, r.Timeout); c != "" {
					more = append(more, c)
				}
			}
			result <- more
		}()
	}
}

// prober sends the app's health probe to one worker slot: a GET on the
// slot's own mesh socket reaches exactly the worker serving it.
type prober struct {
	url     string
	path    string
	timeout time.Duration
	rt      *http.Transport
}

func newProber(socket, app, path string, timeout time.Duration) *prober {
	var d net.Dialer
	return &prober{
		url:     "http://" + app + ".plt.local" + path,
		path:    path,
		timeout: timeout,
		rt: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "unix", socket)
			},
			// A connection kept open would pin the probe to a worker
			// that the slot may replace.
			DisableKeepAlives: true,
			Proxy:             nil,
		},
	}
}

// check returns why the probe failed, or "" for a 2xx in time.
func (p *prober) check(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return "probe GET " + p.path + ": " + err.Error()
	}
	req.Header.Set("User-Agent", "wattd-health")
	resp, err := p.rt.RoundTrip(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Sprintf("probe GET %s: no answer within %s", p.path, p.timeout)
		}
		return "probe GET " + p.path + ": " + unwrapNetError(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Sprintf("probe GET %s: status %d", p.path, resp.StatusCode)
	}
	return ""
}

// unwrapNetError keeps the part of a dial error that says what happened
// ("connection refused"), not the socket path around it.
func unwrapNetError(err error) string {
	var sys *os.SyscallError
	if errors.As(err, &sys) {
		return sys.Err.Error()
	}
	return err.Error()
}

// retire stops w, a worker of the slot being replaced or stopped: drained
// and sent SIGTERM within the application's grace, as stopWorker does,
// unless it is unresponsive (silent for maxUnresponsive, see
// judgeUnresponsive): then neither its drain nor its SIGTERM handler can
// run, and waiting out the grace would only keep the connections it had
// accepted hanging, so it is killed at once. A worker merely slow to
// report (a long synchronous task) gets its grace.
func (s *slot) retire(w worker, onState func(State)) {
	if st, at := w.Stats(); s.app.sp().health.judgeUnresponsive(st, at, time.Now()) != "" {
		if !closed(w.Exited()) {
			s.log.Warn("worker sends no stats; killing it without a drain", zap.Int("pid", w.PID()),
				zap.Duration("silent", time.Since(at).Round(time.Millisecond)))
			onState(StateStopping)
			killWorker(w)
		}
		return
	}
	stopWorker(w, s.app.rt.cfg.GracefulShutdown.Application, onState, s.log)
}

// replaceUnhealthy replaces w, found unhealthy for reason, the way a
// rolling restart does, and returns the slot's worker afterwards: the
// replacement, or w when the replacement failed (w keeps serving; its
// watcher starts over after the grace period, which is what keeps a
// failing replacement from looping).
func (s *slot) replaceUnhealthy(ctx context.Context, w worker, reason string) worker {
	s.log.Warn("worker unhealthy; replacing it", zap.Int("pid", w.PID()), zap.String("reason", reason))
	nw, how, err := s.replaceByStandby(ctx, w)
	if nw == nil && err == nil {
		nw, how, err = s.replace(ctx, w)
	}
	if err != nil {
		if !errors.Is(err, errStopped) {
			s.log.Error("could not replace the unhealthy worker; it keeps serving", zap.Int("pid", w.PID()),
				zap.String("reason", reason), zap.Error(err))
		}
		return w
	}
	ended := s.endedMeanwhile(w)
	s.adopt(nw, how, reason)
	if !ended {
		s.mu.Lock()
		s.lastExit = reason
		s.mu.Unlock()
	}
	s.retireBehind(w, nil)
	return nw
}
