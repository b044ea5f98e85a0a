package main

import (
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
)

// The report has one section per scenario: a table with a column per
// runner and a row per metric, each cell the metric's median over the
// rounds with its min–max, then one verdict line per goal of the scenario
// (PASS or MISS, with the figure it was decided on), then notes (per-round
// ratios and the like). A last section holds the goals every run shares.

// How a metric is folded over rounds and repeats: medians for rates and
// times, so that one noisy run does not decide; sums for error counts, so
// that one bad run is not hidden; the maximum for memory peaks.
type fold int

const (
	foldMedian fold = iota
	foldSum
	foldMax
)

func (f fold) String() string {
	return [...]string{"median", "sum", "max"}[f]
}

// metric is one row of a scenario's table. value reports false for a run
// that has no such figure.
type metric struct {
	name  string
	unit  string
	prec  int
	fold  fold
	value func(r *runRecord) (float64, bool)
}

// goal is one verdict line. eval gets every record of the bench and
// returns whether the goal is met and the figure that says so; a goal that
// could not be measured is not met.
type goal struct {
	text string
	// needs are the runners the goal compares; when one of them was not
	// run at all (not selected), the goal is n/a rather than missed.
	needs []string
	eval  func(records []runRecord) (pass bool, figure string)
}

// spec is what the report knows about a scenario.
type spec struct {
	about   string   // one line under the section's title
	runners []string // the table's columns, in order
	metrics []metric
	goals   []goal
	// notes are extra lines under the verdicts.
	notes func(records []runRecord) []string
}

// cell is a metric's fold over one runner's clean runs, with the range of
// the values folded.
type cell struct {
	Value float64 `json:"value"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
	N     int     `json:"runs"`
}

type row struct {
	Metric string          `json:"metric"`
	Unit   string          `json:"unit,omitempty"`
	Fold   string          `json:"fold"`
	Values map[string]cell `json:"values"`
	prec   int
	fold   fold
}

type verdict struct {
	Goal   string `json:"goal"`
	Result string `json:"result"` // PASS or MISS
	Figure string `json:"figure"`
}

type section struct {
	Scenario string    `json:"scenario"`
	About    string    `json:"about,omitempty"`
	Runners  []string  `json:"runners"`
	Rows     []row     `json:"rows,omitempty"`
	Verdicts []verdict `json:"verdicts"`
	Notes    []string  `json:"notes,omitempty"`
}

const mibF = 1 << 20

// Value extractors shared by the specs.
func loadVal(f func(l *loadSummary) float64) func(r *runRecord) (float64, bool) {
	return func(r *runRecord) (float64, bool) {
		if r.Load == nil {
			return 0, false
		}
		return f(r.Load), true
	}
}

var (
	rps        = loadVal(func(l *loadSummary) float64 { return l.RPS })
	p50        = loadVal(func(l *loadSummary) float64 { return l.P50Ms })
	p99        = loadVal(func(l *loadSummary) float64 { return l.P99Ms })
	failedReqs = loadVal(func(l *loadSummary) float64 { return float64(l.Failed) })
	refused    = loadVal(func(l *loadSummary) float64 { return float64(l.Refused) })
	// allErrors counts everything a client would have seen go wrong.
	allErrors = loadVal(func(l *loadSummary) float64 { return float64(l.Failed + l.Refused + l.DialErr) })
)

func recVal(f func(r *runRecord) float64) func(r *runRecord) (float64, bool) {
	return func(r *runRecord) (float64, bool) { return f(r), true }
}

func withLoad(f func(r *runRecord) float64) func(r *runRecord) (float64, bool) {
	return func(r *runRecord) (float64, bool) {
		if r.Load == nil {
			return 0, false
		}
		return f(r), true
	}
}

func replaceVal(f func(s *replaceSummary) float64) func(r *runRecord) (float64, bool) {
	return func(r *runRecord) (float64, bool) {
		if r.Replace == nil || r.Replace.N == 0 {
			return 0, false
		}
		return f(r.Replace), true
	}
}

func idleVal(f func(s *idleRSS) uint64) func(r *runRecord) (float64, bool) {
	return func(r *runRecord) (float64, bool) {
		if r.Idle == nil {
			return 0, false
		}
		return float64(f(r.Idle)) / mibF, true
	}
}

// cpuPerRequest is the target's CPU time per request in µs: on a machine the
// load saturates, requests/s mostly say who got more of the CPU, this says
// who does less work for a request.
var cpuPerRequest = withLoad(func(r *runRecord) float64 {
	if r.Load.RPS <= 0 {
		return 0
	}
	return r.TargetCores / r.Load.RPS * 1e6
})

// loadMetrics are the rows of every scenario built on the closed loop.
func loadMetrics(cpu bool) []metric {
	m := []metric{
		{name: "requests/s", unit: "req/s", prec: 0, value: rps},
		{name: "p50 latency", unit: "ms", prec: 2, value: p50},
		{name: "p99 latency", unit: "ms", prec: 2, value: p99},
		{name: "errors (sum)", prec: 0, fold: foldSum, value: allErrors},
		{name: "tree RSS (max)", unit: "MiB", prec: 1, fold: foldMax,
			value: withLoad(func(r *runRecord) float64 { return float64(r.MaxTreeRSS) / mibF })},
	}
	if cpu {
		m = append(m,
			metric{name: "target CPU", unit: "cores", prec: 2, value: withLoad(func(r *runRecord) float64 { return r.TargetCores })},
			metric{name: "target CPU per request", unit: "µs", prec: 0, value: cpuPerRequest},
		)
	}
	return append(m, metric{name: "load generator CPU", unit: "cores", prec: 2,
		value: withLoad(func(r *runRecord) float64 { return r.BenchCores })})
}

var specs = map[string]spec{
	scHello: {
		about:   "hello app, closed-loop keep-alive load; wattd, node:cluster, and N plain node processes on one SO_REUSEPORT port",
		runners: []string{"wattd", "cluster", "reuseport"},
		metrics: loadMetrics(true),
		goals: []goal{
			ratioEveryRound(scHello, "wattd", "cluster", "requests/s", rps, 1.00),
			ratioMedian(scHello, "wattd", "reuseport", "requests/s", rps, 0.98),
		},
		notes: func(records []runRecord) []string {
			return append(ratioNotes(records, scHello, "wattd", []string{"cluster", "reuseport"}, "requests/s", rps),
				sameTimeNotes(records, scHello, "wattd", []string{"cluster", "reuseport"})...)
		},
	},
	scConnect: {
		about:   "hello app, closed loop with a new connection for every request (Connection: close); wattd, node:cluster, and N plain node processes on one SO_REUSEPORT port",
		runners: []string{"wattd", "cluster", "reuseport"},
		metrics: append(loadMetrics(true), metric{name: "root process CPU (wattd, the cluster primary)", unit: "cores", prec: 3,
			value: func(r *runRecord) (float64, bool) {
				// Every reuseport process is a root: there is no supervisor.
				return r.RootCores, r.Load != nil && r.Target != "reuseport"
			}}),
		goals: []goal{
			ratioMedian(scConnect, "wattd", "cluster", "requests/s", rps, 1.00),
			ratioMedian(scConnect, "wattd", "reuseport", "requests/s", rps, 0.98),
		},
		notes: func(records []runRecord) []string {
			return ratioNotes(records, scConnect, "wattd", []string{"cluster", "reuseport"}, "requests/s", rps)
		},
	},
	scCrash: {
		about:   "hello app under the same load while a worker exits every 0.5 s; wattd, wattd with one standby worker, node:cluster",
		runners: []string{"wattd", "wattd-standby", "cluster"},
		metrics: crashMetrics(false),
		goals: append(crashGoals(scCrash),
			atMost(scCrash, "wattd", "cluster", "failed requests", "", failedReqs, foldSum)),
		notes: func(records []runRecord) []string { return crashNotes(records, scCrash) },
	},
	scCrashPaced: {
		about: "the crash scenario with the load paced (-crash-rate requests/s in all, each due at a fixed time, latency from when it was due): " +
			"every runner serves the same requests, so their latencies compare at equal work",
		runners: []string{"wattd", "wattd-standby", "cluster"},
		metrics: crashMetrics(true),
		goals:   crashGoals(scCrashPaced),
		notes: func(records []runRecord) []string {
			return append(pacedNotes(records, scCrashPaced), crashNotes(records, scCrashPaced)...)
		},
	},
	scRolling: {
		about:   "`wattd ctl restart hello` under the keep-alive load, once per round; wattd, and wattd with one standby worker",
		runners: []string{"wattd", "wattd-standby"},
		metrics: []metric{
			{name: "failed or refused requests (sum)", prec: 0, fold: foldSum, value: allErrors},
			{name: "requests served meanwhile (sum)", prec: 0, fold: foldSum,
				value: loadVal(func(l *loadSummary) float64 { return float64(l.Requests) })},
			{name: "p99 latency", unit: "ms", prec: 2, value: p99},
			{name: "ctl restart took", unit: "ms", prec: 0, value: withLoad(func(r *runRecord) float64 { return r.OpMs })},
		},
		goals: []goal{
			sumZero(scRolling, "wattd", "failed or refused requests", allErrors),
			sumZero(scRolling, "wattd-standby", "failed or refused requests", allErrors),
		},
	},
	scMesh: {
		about:   "entry app calling an internal app once per request; wattd's mesh, loopback TCP with fetch, loopback TCP with http.get and a keep-alive Agent",
		runners: []string{"wattd", "tcp-fetch", "tcp-agent"},
		metrics: append(loadMetrics(true), metric{name: "processes in tree (max)", prec: 0, fold: foldMax,
			value: withLoad(func(r *runRecord) float64 { return float64(r.MaxProcs) })}),
		goals: []goal{
			ratioMedian(scMesh, "wattd", "tcp-fetch", "requests/s", rps, 1.30),
			atMost(scMesh, "wattd", "tcp-fetch", "p99 latency", "ms", p99, foldMedian),
		},
		notes: func(records []runRecord) []string {
			return append(ratioNotes(records, scMesh, "wattd", []string{"tcp-fetch", "tcp-agent"}, "requests/s", rps),
				sameTimeNotes(records, scMesh, "wattd", []string{"tcp-fetch", "tcp-agent"})...)
		},
	},
	scStart: {
		about:   "exec to the first HTTP 200 on the hello app, then a graceful SIGTERM stop; wattd and node:cluster",
		runners: []string{"wattd", "cluster"},
		metrics: []metric{
			{name: "exec to first 200", unit: "ms", prec: 1, value: recVal(func(r *runRecord) float64 { return r.FirstOKMs })},
			{name: "SIGTERM to exit", unit: "ms", prec: 1, value: recVal(func(r *runRecord) float64 { return r.StopMs })},
		},
		goals: []goal{
			valueAtMost(scStart, "wattd", "exec to first 200", "ms", recVal(func(r *runRecord) float64 { return r.FirstOKMs }), foldMedian, 300),
		},
	},
	scRSS: {
		about:   "resident memory of the root process (wattd, the cluster primary) and of the whole tree, idle after the start and idle after the load",
		runners: []string{"wattd", "cluster"},
		metrics: []metric{
			{name: "root, idle after start", unit: "MiB", prec: 1, value: idleVal(func(s *idleRSS) uint64 { return s.StartRoot })},
			{name: "tree, idle after start", unit: "MiB", prec: 1, value: idleVal(func(s *idleRSS) uint64 { return s.StartTree })},
			{name: "root, idle after load", unit: "MiB", prec: 1, value: idleVal(func(s *idleRSS) uint64 { return s.AfterRoot })},
			{name: "tree, idle after load", unit: "MiB", prec: 1, value: idleVal(func(s *idleRSS) uint64 { return s.AfterTree })},
			{name: "root, idle after load, not file-backed", unit: "MiB", prec: 1, value: idleVal(func(s *idleRSS) uint64 { return s.AfterRootPrivate })},
			{name: "root, peak under load (max)", unit: "MiB", prec: 1, fold: foldMax, value: rootPeak},
			{name: "tree, peak under load (max)", unit: "MiB", prec: 1, fold: foldMax,
				value: withLoad(func(r *runRecord) float64 { return float64(r.MaxTreeRSS) / mibF })},
			{name: "processes in tree", prec: 0, fold: foldMax,
				value: func(r *runRecord) (float64, bool) {
					if r.Idle == nil {
						return 0, false
					}
					return float64(r.Idle.Procs), true
				}},
		},
		goals: []goal{
			valueAtMost(scRSS, "wattd", "root process peak RSS", "MiB", rootPeak, foldMax, 20),
		},
	},
	metricsScenario: {
		about:   "hello app under wattd with the runtime's metrics on (scraped every second) and off",
		runners: []string{"wattd", metricsOnTarget},
		metrics: loadMetrics(true),
		goals: []goal{
			ratioMedian(metricsScenario, metricsOnTarget, "wattd", "requests/s", rps, 1-metricsGoal),
		},
		notes: func(records []runRecord) []string {
			return sameTimeNotes(records, metricsScenario, metricsOnTarget, []string{"wattd"})
		},
	},
	scTracing: {
		about:   "hello app under wattd with tracing on (100% sampled, OTLP/HTTP to a discarding sink) and off",
		runners: tracingVariants,
		metrics: loadMetrics(true),
		goals: []goal{
			ratioMedian(scTracing, "tracing-on", "tracing-off", "requests/s", rps, tracingGoal),
		},
		notes: func(records []runRecord) []string {
			return sameTimeNotes(records, scTracing, "tracing-on", []string{"tracing-off"})
		},
	},
	scPromote: {
		about:   "one worker and one standby of the hello app; the worker killed, 25 connections opened at once, 40 requests each; the standby warmed up, and not (WATTD_STANDBY_WARMUP=0)",
		runners: promoteVariants,
		metrics: []metric{
			{name: "first request of a connection, p50", unit: "ms", prec: 1, value: promoteVal(func(p *promoteSummary) float64 { return p.FirstP50Ms })},
			{name: "first request of a connection, p90", unit: "ms", prec: 1, value: promoteFirstP90},
			{name: "first request of a connection, max", unit: "ms", prec: 1, value: promoteVal(func(p *promoteSummary) float64 { return p.FirstMaxMs })},
			{name: "later requests, p50", unit: "ms", prec: 2, value: promoteVal(func(p *promoteSummary) float64 { return p.LaterP50Ms })},
			{name: "later requests, p99", unit: "ms", prec: 2, value: promoteVal(func(p *promoteSummary) float64 { return p.LaterP99Ms })},
			{name: "failed connections (sum)", prec: 0, fold: foldSum, value: promoteVal(func(p *promoteSummary) float64 { return float64(p.Failed) })},
		},
		goals: []goal{
			atMost(scPromote, "warm", "cold", "first request p90", "ms", promoteFirstP90, foldMedian),
		},
	},
	scReload: {
		about:   "under the keep-alive load, wattd applies `ctl reload` (the app rolled), `ctl scale hello 4`, `ctl scale hello 1`, each in its own window",
		runners: reloadOps,
		metrics: []metric{
			{name: "failed or refused requests (sum)", prec: 0, fold: foldSum, value: allErrors},
			{name: "requests served meanwhile (sum)", prec: 0, fold: foldSum,
				value: loadVal(func(l *loadSummary) float64 { return float64(l.Requests) })},
			{name: "p99 latency", unit: "ms", prec: 2, value: p99},
		},
		goals: []goal{
			sumZero(scReload, "reload", "failed or refused requests", allErrors),
			sumZero(scReload, "scale-up", "failed or refused requests", allErrors),
			sumZero(scReload, "scale-down", "failed or refused requests", allErrors),
		},
	},
}

// promoteVal reads a promote run's figure.
func promoteVal(f func(*promoteSummary) float64) func(*runRecord) (float64, bool) {
	return func(r *runRecord) (float64, bool) {
		if r.Promote == nil {
			return 0, false
		}
		return f(r.Promote), true
	}
}

var promoteFirstP90 = promoteVal(func(p *promoteSummary) float64 { return p.FirstP90Ms })

var rootPeak = withLoad(func(r *runRecord) float64 { return float64(r.MaxRootRSS) / mibF })

// cleanRuns returns the runs of target in scenario that produced a
// measurement.
func cleanRuns(records []runRecord, scenario, target string) []*runRecord {
	var out []*runRecord
	for i := range records {
		r := &records[i]
		if r.Scenario == scenario && r.Target == target && r.Error == "" {
			out = append(out, r)
		}
	}
	return out
}

// values returns f over target's clean runs of scenario, and how many runs
// there were in all.
func values(records []runRecord, scenario, target string, f func(*runRecord) (float64, bool)) (vals []float64, runs int) {
	for i := range records {
		r := &records[i]
		if r.Scenario != scenario || r.Target != target {
			continue
		}
		runs++
		if r.Error != "" {
			continue
		}
		if v, ok := f(r); ok {
			vals = append(vals, v)
		}
	}
	return vals, runs
}

// perRound returns, by round, the median of f over target's clean runs of
// scenario in that round (one run per round but in the start scenario).
func perRound(records []runRecord, scenario, target string, f func(*runRecord) (float64, bool)) map[int]float64 {
	by := map[int][]float64{}
	for _, r := range cleanRuns(records, scenario, target) {
		if v, ok := f(r); ok {
			by[r.Round] = append(by[r.Round], v)
		}
	}
	out := make(map[int]float64, len(by))
	for round, vals := range by {
		out[round] = median(vals)
	}
	return out
}

// roundsRun lists the rounds in which any of targets ran scenario.
func roundsRun(records []runRecord, scenario string, targets ...string) []int {
	seen := map[int]bool{}
	for _, r := range records {
		if r.Scenario == scenario && slices.Contains(targets, r.Target) {
			seen[r.Round] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// noMeasurement explains why one of targets has no measurement in scenario:
// not run, or its first error's first line.
func noMeasurement(records []runRecord, scenario string, targets ...string) string {
	for _, t := range targets {
		if len(cleanRuns(records, scenario, t)) > 0 {
			continue
		}
		for _, r := range records {
			if r.Scenario == scenario && r.Target == t && r.Error != "" {
				msg, _, _ := strings.Cut(r.Error, "\n")
				return fmt.Sprintf("no measurement: %s failed: %s", t, msg)
			}
		}
		return "no measurement: " + t + " did not run"
	}
	return "no measurement"
}

// roundRatios divides a's per-round value by b's, round by round; rounds in
// which either has no value are returned apart.
func roundRatios(records []runRecord, scenario, a, b string, f func(*runRecord) (float64, bool)) (rounds []int, ratios []float64, missing []int) {
	va, vb := perRound(records, scenario, a, f), perRound(records, scenario, b, f)
	for _, round := range roundsRun(records, scenario, a, b) {
		x, okA := va[round]
		y, okB := vb[round]
		if !okA || !okB || y == 0 {
			missing = append(missing, round)
			continue
		}
		rounds = append(rounds, round)
		ratios = append(ratios, x/y)
	}
	return rounds, ratios, missing
}

func fmtRatios(ratios []float64) string {
	parts := make([]string, len(ratios))
	for i, r := range ratios {
		parts[i] = fmt.Sprintf("%.3f", r)
	}
	return strings.Join(parts, " ")
}

// ratioEveryRound: a/b of the metric at least min in every round.
func ratioEveryRound(scenario, a, b, what string, f func(*runRecord) (float64, bool), min float64) goal {
	return goal{
		text:  fmt.Sprintf("%s/%s %s >= %.2f in every round", a, b, what, min),
		needs: []string{a, b},
		eval: func(records []runRecord) (bool, string) {
			_, ratios, missing := roundRatios(records, scenario, a, b, f)
			if len(ratios) == 0 {
				return false, noMeasurement(records, scenario, a, b)
			}
			pass := len(missing) == 0 && slices.Min(ratios) >= min
			fig := fmt.Sprintf("rounds %s (min %.3f)", fmtRatios(ratios), slices.Min(ratios))
			if len(missing) > 0 {
				fig += fmt.Sprintf("; no measurement in round(s) %v", missing)
			}
			return pass, fig
		},
	}
}

// ratioMedian: the median over rounds of a/b of the metric at least min.
func ratioMedian(scenario, a, b, what string, f func(*runRecord) (float64, bool), min float64) goal {
	return goal{
		text:  fmt.Sprintf("%s/%s %s >= %.2f (median of rounds)", a, b, what, min),
		needs: []string{a, b},
		eval: func(records []runRecord) (bool, string) {
			_, ratios, _ := roundRatios(records, scenario, a, b, f)
			if len(ratios) == 0 {
				return false, noMeasurement(records, scenario, a, b)
			}
			med := median(ratios)
			return med >= min, fmt.Sprintf("median %.3f (%.3f–%.3f over %d rounds)", med, slices.Min(ratios), slices.Max(ratios), len(ratios))
		},
	}
}

// atMost: a's metric, folded over its runs, at most b's.
func atMost(scenario, a, b, what, unit string, f func(*runRecord) (float64, bool), fd fold) goal {
	return goal{
		text:  fmt.Sprintf("%s %s <= %s's (%s)", a, what, b, fd),
		needs: []string{a, b},
		eval: func(records []runRecord) (bool, string) {
			va, _ := values(records, scenario, a, f)
			vb, _ := values(records, scenario, b, f)
			if len(va) == 0 || len(vb) == 0 {
				return false, noMeasurement(records, scenario, a, b)
			}
			x, y := foldValues(fd, va), foldValues(fd, vb)
			return x <= y, fmt.Sprintf("%s %s vs %s %s", a, withUnit(x, unit), b, withUnit(y, unit))
		},
	}
}

// sumZero: the metric sums to 0 over every run of target, and every run
// produced a measurement.
func sumZero(scenario, target, what string, f func(*runRecord) (float64, bool)) goal {
	return goal{
		text:  fmt.Sprintf("%s %s = 0", target, what),
		needs: []string{target},
		eval: func(records []runRecord) (bool, string) {
			vals, runs := values(records, scenario, target, f)
			if len(vals) == 0 {
				return false, noMeasurement(records, scenario, target)
			}
			sum := foldValues(foldSum, vals)
			fig := fmt.Sprintf("%.0f over %d runs", sum, len(vals))
			if len(vals) < runs {
				fig += fmt.Sprintf(" (%d of %d runs failed)", runs-len(vals), runs)
			}
			return sum == 0 && len(vals) == runs, fig
		},
	}
}

// valueAtMost: target's metric, folded over its runs, at most limit.
func valueAtMost(scenario, target, what, unit string, f func(*runRecord) (float64, bool), fd fold, limit float64) goal {
	return goal{
		text:  fmt.Sprintf("%s %s <= %s (%s)", target, what, withUnit(limit, unit), fd),
		needs: []string{target},
		eval: func(records []runRecord) (bool, string) {
			vals, _ := values(records, scenario, target, f)
			if len(vals) == 0 {
				return false, noMeasurement(records, scenario, target)
			}
			v := foldValues(fd, vals)
			return v <= limit, withUnit(v, unit)
		},
	}
}

func withUnit(v float64, unit string) string {
	prec := 0
	if v < 100 && v != float64(int64(v)) {
		prec = 1
	}
	if unit == "" {
		return fmt.Sprintf("%.*f", prec, v)
	}
	return fmt.Sprintf("%.*f %s", prec, v, unit)
}

// ratioNotes are a line per baseline with a's ratio to it round by round.
func ratioNotes(records []runRecord, scenario, a string, baselines []string, what string, f func(*runRecord) (float64, bool)) []string {
	var out []string
	for _, b := range baselines {
		rounds, ratios, _ := roundRatios(records, scenario, a, b, f)
		if len(ratios) == 0 {
			continue
		}
		parts := make([]string, len(ratios))
		for i := range ratios {
			parts[i] = fmt.Sprintf("r%d %.3f", rounds[i], ratios[i])
		}
		out = append(out, fmt.Sprintf("%s/%s %s by round: %s; median %.3f",
			a, b, what, strings.Join(parts, ", "), median(ratios)))
	}
	return out
}

// crashMetrics are the crash scenarios' table rows; paced adds p50 and the
// requests sent late.
func crashMetrics(paced bool) []metric {
	m := []metric{
		{name: "requests/s", unit: "req/s", prec: 0, value: rps},
		{name: "p99 latency", unit: "ms", prec: 2, value: p99},
		{name: "max latency", unit: "ms", prec: 0, value: loadVal(func(l *loadSummary) float64 { return l.MaxMs })},
		{name: "failed requests (sum)", prec: 0, fold: foldSum, value: failedReqs},
		{name: "  of which on a fresh connection", prec: 0, fold: foldSum,
			value: loadVal(func(l *loadSummary) float64 { return float64(l.FailedFresh) })},
		{name: "  of which timeouts (> 2 s)", prec: 0, fold: foldSum,
			value: loadVal(func(l *loadSummary) float64 { return float64(l.Timeout) })},
		{name: "refused connections (sum)", prec: 0, fold: foldSum, value: refused},
		{name: "  refused time per connection", unit: "ms", prec: 0,
			value: loadVal(func(l *loadSummary) float64 { return l.RefusedMsPerConn })},
		{name: "worker deaths (sum)", prec: 0, fold: foldSum,
			value: func(r *runRecord) (float64, bool) {
				if r.Replace == nil {
					return 0, false
				}
				return float64(r.Replace.Exits), true
			}},
		{name: "worker deaths replaced (sum)", prec: 0, fold: foldSum,
			value: func(r *runRecord) (float64, bool) {
				if r.Replace == nil {
					return 0, false
				}
				return float64(r.Replace.N), true
			}},
		{name: "death to replacement listening, median", unit: "ms", prec: 1,
			value: replaceVal(func(s *replaceSummary) float64 { return s.MedianMs })},
		{name: "death to replacement listening, p90", unit: "ms", prec: 1,
			value: replaceVal(func(s *replaceSummary) float64 { return s.P90Ms })},
	}
	if paced {
		m = slices.Insert(m, 1, metric{name: "p50 latency", unit: "ms", prec: 2, value: p50})
		m = slices.Insert(m, 4, metric{name: "requests sent late (sum)", prec: 0, fold: foldSum,
			value: loadVal(func(l *loadSummary) float64 { return float64(l.Late) })})
	}
	return m
}

// crashGoals are the goals both crash scenarios share: with a standby,
// p99 no worse than node:cluster's, and no connection refused.
func crashGoals(sc string) []goal {
	return []goal{
		atMost(sc, "wattd-standby", "cluster", "p99 latency", "ms", p99, foldMedian),
		sumZero(sc, "wattd-standby", "refused connections", refused),
		sumZero(sc, "wattd", "refused connections", refused),
	}
}

// pacedNotes say which runners fell behind a paced load (served less than
// 97% of the rate): their latencies then count the wait of the requests
// held back, and the goal compares them at their limit, not at equal work.
func pacedNotes(records []runRecord, sc string) []string {
	var out []string
	for _, t := range scenarioTargets[sc] {
		for _, r := range cleanRuns(records, sc, t) {
			if l := r.Load; l != nil && l.PacedRPS > 0 && l.RPS < 0.97*l.PacedRPS {
				out = append(out, fmt.Sprintf("%s r%d served %.0f req/s of the %.0f asked: it fell behind, and its latencies count the wait (lower -crash-rate)",
					t, r.Round, l.RPS, l.PacedRPS))
			}
		}
	}
	return out
}

// crashNotes pool the replacement times of all rounds, per runner.
func crashNotes(records []runRecord, sc string) []string {
	var out []string
	for _, t := range scenarioTargets[sc] {
		var gaps []float64
		for _, r := range cleanRuns(records, sc, t) {
			if r.Replace != nil {
				gaps = append(gaps, r.Replace.GapsMs...)
			}
		}
		if len(gaps) == 0 {
			continue
		}
		out = append(out, fmt.Sprintf("%s: worker death to replacement listening, all rounds: median %.1f ms, p90 %.1f ms, max %.1f ms (%d replacements)",
			t, quantile(gaps, 0.5), quantile(gaps, 0.9), slices.Max(gaps), len(gaps)))
	}
	return out
}

// commonGoals hold for every run of every scenario.
var commonGoals = []goal{
	{text: "stops needing SIGKILL = 0", eval: func(records []runRecord) (bool, string) {
		n := 0
		for _, r := range records {
			if r.ForcedKill {
				n++
			}
		}
		return n == 0, fmt.Sprintf("%d of %d runs", n, len(records))
	}},
	{text: "processes outliving their target = 0", eval: func(records []runRecord) (bool, string) {
		n := 0
		for _, r := range records {
			n += r.Orphans
		}
		return n == 0, fmt.Sprintf("%d over %d runs", n, len(records))
	}},
}

// summarize builds a section per scenario that has records, in the order
// given, and the closing section of the goals every run shares.
func summarize(records []runRecord, scenarios []string) []section {
	var out []section
	for _, sc := range scenarios {
		sp, ok := specs[sc]
		if !ok {
			continue
		}
		var runners []string
		for _, t := range sp.runners {
			if slices.ContainsFunc(records, func(r runRecord) bool { return r.Scenario == sc && r.Target == t }) {
				runners = append(runners, t)
			}
		}
		if len(runners) == 0 {
			continue
		}
		s := section{Scenario: sc, About: sp.about, Runners: runners}
		for _, m := range sp.metrics {
			rw := row{Metric: m.name, Unit: m.unit, Fold: m.fold.String(), Values: map[string]cell{}, prec: m.prec, fold: m.fold}
			for _, t := range runners {
				if vals, _ := values(records, sc, t, m.value); len(vals) > 0 {
					rw.Values[t] = cell{Value: foldValues(m.fold, vals), Min: slices.Min(vals), Max: slices.Max(vals), N: len(vals)}
				}
			}
			if len(rw.Values) > 0 {
				s.Rows = append(s.Rows, rw)
			}
		}
		s.Verdicts = evalGoals(sp.goals, records, runners)
		for _, t := range runners {
			if len(cleanRuns(records, sc, t)) == 0 {
				s.Notes = append(s.Notes, strings.TrimPrefix(noMeasurement(records, sc, t), "no measurement: "))
			}
		}
		if sp.notes != nil {
			s.Notes = append(s.Notes, sp.notes(records)...)
		}
		out = append(out, s)
	}
	if len(records) > 0 {
		out = append(out, section{Scenario: "all runs", Verdicts: evalGoals(commonGoals, records, nil)})
	}
	return out
}

// evalGoals decides the goals of a section whose runners ran.
func evalGoals(goals []goal, records []runRecord, ran []string) []verdict {
	var out []verdict
	for _, g := range goals {
		if i := slices.IndexFunc(g.needs, func(t string) bool { return !slices.Contains(ran, t) }); i >= 0 {
			out = append(out, verdict{Goal: g.text, Result: "n/a", Figure: g.needs[i] + " not run"})
			continue
		}
		pass, fig := g.eval(records)
		v := verdict{Goal: g.text, Result: "MISS", Figure: fig}
		if pass {
			v.Result = "PASS"
		}
		out = append(out, v)
	}
	return out
}

func foldValues(f fold, vals []float64) float64 {
	switch f {
	case foldSum:
		var s float64
		for _, v := range vals {
			s += v
		}
		return s
	case foldMax:
		return slices.Max(vals)
	}
	return median(vals)
}

func median(vals []float64) float64 {
	if len(vals) == 0 {
		return 0
	}
	s := slices.Clone(vals)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func collectProblems(records []runRecord) []string {
	var out []string
	for _, r := range records {
		where := fmt.Sprintf("%s %s round %d", r.Target, r.Scenario, r.Round)
		if r.Repeat > 0 {
			where += fmt.Sprintf(" start %d", r.Repeat)
		}
		if r.Error != "" && !r.Interrupted {
			out = append(out, where+": "+r.Error)
		}
		if r.ForcedKill {
			out = append(out, where+": did not exit within 10 s of SIGTERM, SIGKILLed")
		}
		if r.Orphans > 0 {
			out = append(out, fmt.Sprintf("%s: %d descendant(s) outlived the root and were SIGKILLed", where, r.Orphans))
		}
		if r.StopExit != "" && r.StopExit != "exit 0" && r.Error == "" {
			out = append(out, where+": stopped with "+r.StopExit+" instead of exit 0")
		}
	}
	return out
}

func printReport(w io.Writer, cfg config, env benchEnv, sections []section, problems []string) {
	conns := fmt.Sprintf("%d conns", cfg.conns)
	if slices.Contains(cfg.scenarios, scMesh) && cfg.meshConns != cfg.conns {
		conns += fmt.Sprintf(" (mesh %d)", cfg.meshConns)
	}
	fmt.Fprintf(w, "\nwattbench: %d CPUs, kernel %s, node %s, %d workers, %s, %s load after %s warm-up\n",
		runtime.NumCPU(), env.kernel, env.nodeVersion, env.workers, conns, cfg.duration, cfg.warmup)
	pass, miss := 0, 0
	var missed []string
	for _, s := range sections {
		printSection(w, s, cfg.roundsOf(s.Scenario))
		for _, v := range s.Verdicts {
			switch v.Result {
			case "PASS":
				pass++
			case "MISS":
				miss++
				missed = append(missed, s.Scenario+": "+v.Goal)
			}
		}
	}
	fmt.Fprintf(w, "\ngoals: %d PASS, %d MISS", pass, miss)
	if miss > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(missed, "; "))
	}
	fmt.Fprintln(w)
	if len(problems) > 0 {
		fmt.Fprintf(w, "\nproblems:\n")
		for _, p := range problems {
			fmt.Fprintln(w, "  - "+strings.ReplaceAll(p, "\n", "\n    "))
		}
	}
}

// printSection prints one scenario: its table (each cell the fold over the
// runs, with the runs' min–max for medians), its verdicts and its notes.
func printSection(w io.Writer, s section, rounds int) {
	if len(s.Rows) > 0 || s.About != "" {
		fmt.Fprintf(w, "\n== %s, %d round(s): %s\n", s.Scenario, rounds, s.About)
	} else {
		fmt.Fprintf(w, "\n== %s\n", s.Scenario)
	}
	if len(s.Rows) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "metric\tunit\t%s\n", strings.Join(s.Runners, "\t"))
		for _, r := range s.Rows {
			cells := make([]string, len(s.Runners))
			for i, t := range s.Runners {
				cells[i] = fmtCell(r, t)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Metric, r.Unit, strings.Join(cells, "\t"))
		}
		tw.Flush()
	}
	for _, v := range s.Verdicts {
		fmt.Fprintf(w, "%s  %s: %s: %s\n", v.Result, s.Scenario, v.Goal, v.Figure)
	}
	for _, n := range s.Notes {
		fmt.Fprintln(w, "  "+n)
	}
}

// fmtCell is "median (min–max)" for a median over several runs, the bare
// value otherwise, "-" for none.
func fmtCell(r row, target string) string {
	c, ok := r.Values[target]
	if !ok {
		return "-"
	}
	if r.fold == foldMedian && c.N > 1 {
		return fmt.Sprintf("%.*f (%.*f–%.*f)", r.prec, c.Value, r.prec, c.Min, r.prec, c.Max)
	}
	return fmt.Sprintf("%.*f", r.prec, c.Value)
}
