package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
)

// row is one line of the summary table. Values are nil where the target was
// not run or produced no measurement.
type row struct {
	Metric  string   `json:"metric"`
	Unit    string   `json:"unit"`
	Wattd   *float64 `json:"wattd"`
	Cluster *float64 `json:"cluster"`
	TCP     *float64 `json:"tcp,omitempty"` // mesh scenario and all-runs rows only
	// Baseline names the target Ratio divides by: cluster, or tcp for the
	// mesh scenario; empty for the all-runs rows, whose baseline value is
	// the sum over both baselines.
	Baseline string   `json:"baseline,omitempty"`
	Ratio    *float64 `json:"ratio"` // wattd / baseline
	Goal     string   `json:"goal,omitempty"`
	Result   string   `json:"result,omitempty"` // PASS, MISS or n/a
	prec     int
}

// How a metric is folded over rounds and repeats: medians for rates and
// times, so that one noisy run does not decide; sums for error counts, so
// that one bad run is not hidden; the maximum for memory peaks.
type fold int

const (
	foldMedian fold = iota
	foldSum
	foldMax
)

type metric struct {
	scenario string
	name     string
	unit     string
	prec     int
	fold     fold
	value    func(r *runRecord) float64
	goal     string
	// check decides PASS or MISS; nil means the metric is informational.
	// It gets the wattd value, the baseline's (see row.Baseline) and their
	// ratio, any of which may be nil.
	check func(w, base, ratio *float64) (bool, bool) // (pass, applicable)
}

const mibF = 1 << 20

func loadVal(f func(l *loadSummary) float64) func(r *runRecord) float64 {
	return func(r *runRecord) float64 { return f(r.Load) }
}

var metrics = []metric{
	{scenario: "startup", name: "startup: exec to first 200 (median)", unit: "ms", prec: 1,
		value: func(r *runRecord) float64 { return r.FirstOKMs },
		goal:  "wattd <= 300 ms",
		check: func(w, _, _ *float64) (bool, bool) { return w != nil && *w <= 300, w != nil }},
	{scenario: "startup", name: "startup: SIGTERM to exit (median)", unit: "ms", prec: 1,
		value: func(r *runRecord) float64 { return r.StopMs }},

	{scenario: "throughput", name: "throughput: requests/s", unit: "req/s", prec: 0,
		value: loadVal(func(l *loadSummary) float64 { return l.RPS }),
		goal:  "ratio >= 1.00",
		check: func(_, _, ratio *float64) (bool, bool) { return ratio != nil && *ratio >= 1, ratio != nil }},
	{scenario: "throughput", name: "throughput: p50 latency", unit: "ms", prec: 2,
		value: loadVal(func(l *loadSummary) float64 { return l.P50Ms })},
	{scenario: "throughput", name: "throughput: p99 latency", unit: "ms", prec: 2,
		value: loadVal(func(l *loadSummary) float64 { return l.P99Ms })},
	{scenario: "throughput", name: "throughput: errors (sum)", unit: "", prec: 0, fold: foldSum,
		value: loadVal(func(l *loadSummary) float64 { return float64(l.Failed + l.Refused + l.DialErr) })},
	{scenario: "throughput", name: "throughput: tree RSS (max)", unit: "MiB", prec: 1, fold: foldMax,
		value: func(r *runRecord) float64 { return float64(r.MaxTreeRSS) / mibF }},
	{scenario: "throughput", name: "throughput: root process RSS (max)", unit: "MiB", prec: 1, fold: foldMax,
		value: func(r *runRecord) float64 { return float64(r.MaxRootRSS) / mibF },
		goal:  "wattd <= 20 MiB",
		check: func(w, _, _ *float64) (bool, bool) { return w != nil && *w <= 20, w != nil }},
	{scenario: "throughput", name: "throughput: processes in tree (max)", unit: "", prec: 0, fold: foldMax,
		value: func(r *runRecord) float64 { return float64(r.MaxProcs) }},
	{scenario: "throughput", name: "throughput: target CPU", unit: "cores", prec: 2,
		value: func(r *runRecord) float64 { return r.TargetCores }},
	{scenario: "throughput", name: "throughput: load generator CPU", unit: "cores", prec: 2,
		value: func(r *runRecord) float64 { return r.BenchCores }},

	{scenario: "crash", name: "crash: requests/s", unit: "req/s", prec: 0,
		value: loadVal(func(l *loadSummary) float64 { return l.RPS })},
	{scenario: "crash", name: "crash: p99 latency", unit: "ms", prec: 2,
		value: loadVal(func(l *loadSummary) float64 { return l.P99Ms })},
	{scenario: "crash", name: "crash: refused connections (sum)", unit: "", prec: 0, fold: foldSum,
		value: loadVal(func(l *loadSummary) float64 { return float64(l.Refused) }),
		goal:  "wattd = 0",
		check: func(w, _, _ *float64) (bool, bool) { return w != nil && *w == 0, w != nil }},
	{scenario: "crash", name: "crash:   refused streaks (sum)", unit: "", prec: 0, fold: foldSum,
		value: loadVal(func(l *loadSummary) float64 { return float64(l.RefusedStreaks) })},
	{scenario: "crash", name: "crash:   refused time per connection", unit: "ms", prec: 0,
		value: loadVal(func(l *loadSummary) float64 { return l.RefusedMsPerConn })},
	{scenario: "crash", name: "crash: failed requests (sum)", unit: "", prec: 0, fold: foldSum,
		value: loadVal(func(l *loadSummary) float64 { return float64(l.Failed) }),
		goal:  "wattd <= cluster",
		check: func(w, c, _ *float64) (bool, bool) { return w != nil && c != nil && *w <= *c, w != nil && c != nil }},
	{scenario: "crash", name: "crash:   of which on a fresh connection", unit: "", prec: 0, fold: foldSum,
		value: loadVal(func(l *loadSummary) float64 { return float64(l.FailedFresh) })},
	{scenario: "crash", name: "crash:   of which timeouts (> 2 s)", unit: "", prec: 0, fold: foldSum,
		value: loadVal(func(l *loadSummary) float64 { return float64(l.Timeout) })},
	{scenario: "crash", name: "crash: distinct pids seen in tree (sum)", unit: "", prec: 0, fold: foldSum,
		value: func(r *runRecord) float64 { return float64(r.PidsSeen) }},

	{scenario: "mesh", name: "mesh: requests/s", unit: "req/s", prec: 0,
		value: loadVal(func(l *loadSummary) float64 { return l.RPS }),
		goal:  "ratio >= 1.30",
		check: func(_, _, ratio *float64) (bool, bool) { return ratio != nil && *ratio >= 1.3, ratio != nil }},
	{scenario: "mesh", name: "mesh: p50 latency", unit: "ms", prec: 2,
		value: loadVal(func(l *loadSummary) float64 { return l.P50Ms })},
	{scenario: "mesh", name: "mesh: p99 latency", unit: "ms", prec: 2,
		value: loadVal(func(l *loadSummary) float64 { return l.P99Ms }),
		goal:  "wattd <= tcp",
		check: func(w, t, _ *float64) (bool, bool) { return w != nil && t != nil && *w <= *t, w != nil && t != nil }},
	{scenario: "mesh", name: "mesh: errors (sum)", unit: "", prec: 0, fold: foldSum,
		value: loadVal(func(l *loadSummary) float64 { return float64(l.Failed + l.Refused + l.DialErr) })},
	{scenario: "mesh", name: "mesh: tree RSS (max)", unit: "MiB", prec: 1, fold: foldMax,
		value: func(r *runRecord) float64 { return float64(r.MaxTreeRSS) / mibF }},
	{scenario: "mesh", name: "mesh: processes in tree (max)", unit: "", prec: 0, fold: foldMax,
		value: func(r *runRecord) float64 { return float64(r.MaxProcs) }},
	{scenario: "mesh", name: "mesh: target CPU", unit: "cores", prec: 2,
		value: func(r *runRecord) float64 { return r.TargetCores }},
	// On a machine the load saturates, requests/s mostly says who got more
	// of the CPU; the CPU a request costs says who does less work for it.
	{scenario: "mesh", name: "mesh: target CPU per request", unit: "µs", prec: 0,
		value: func(r *runRecord) float64 {
			if r.Load.RPS <= 0 {
				return 0
			}
			return r.TargetCores / r.Load.RPS * 1e6
		}},
	{scenario: "mesh", name: "mesh: load generator CPU", unit: "cores", prec: 2,
		value: func(r *runRecord) float64 { return r.BenchCores }},

	{scenario: "", name: "all runs: stops needing SIGKILL", unit: "", prec: 0, fold: foldSum,
		value: func(r *runRecord) float64 { return b2f(r.ForcedKill) },
		goal:  "0",
		check: zeroForAll},
	{scenario: "", name: "all runs: orphaned processes", unit: "", prec: 0, fold: foldSum,
		value: func(r *runRecord) float64 { return float64(r.Orphans) },
		goal:  "0",
		check: zeroForAll},
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// zeroForAll is the check of the all-runs rows, whose baseline value is the
// sum over every baseline target.
func zeroForAll(w, base, _ *float64) (bool, bool) {
	pass, any := true, false
	for _, v := range []*float64{w, base} {
		if v != nil {
			any = true
			pass = pass && *v == 0
		}
	}
	return pass, any
}

// summarize folds the records into table rows, skipping scenarios that were
// not run. Failed runs are left out of the values: they are reported apart.
func summarize(records []runRecord, targets []string) []row {
	ran := map[string]bool{"": len(records) > 0}
	for _, r := range records {
		ran[r.Scenario] = true
	}
	var rows []row
	for _, m := range metrics {
		if !ran[m.scenario] {
			continue
		}
		rw := row{Metric: m.name, Unit: m.unit, Goal: m.goal, prec: m.prec}
		if m.scenario != "" {
			rw.Baseline = baselineOf(m.scenario)
		}
		for _, t := range targets {
			var vals []float64
			for i := range records {
				r := &records[i]
				if r.Target != t || (m.scenario != "" && r.Scenario != m.scenario) {
					continue
				}
				// Stop-related totals count every run that got as far as
				// stopping; everything else needs a clean run.
				if m.scenario != "" && r.Error != "" {
					continue
				}
				if m.scenario != "" && r.Scenario != "startup" && r.Load == nil {
					continue
				}
				vals = append(vals, m.value(r))
			}
			if len(vals) == 0 {
				continue
			}
			v := foldValues(m.fold, vals)
			switch t {
			case "wattd":
				rw.Wattd = &v
			case "cluster":
				rw.Cluster = &v
			case "tcp":
				rw.TCP = &v
			}
		}
		base := rw.baseline()
		if rw.Wattd != nil && base != nil && *base != 0 {
			ratio := *rw.Wattd / *base
			rw.Ratio = &ratio
		}
		if m.check != nil {
			if pass, ok := m.check(rw.Wattd, base, rw.Ratio); !ok {
				rw.Result = "n/a"
			} else if pass {
				rw.Result = "PASS"
			} else {
				rw.Result = "MISS"
			}
		}
		rows = append(rows, rw)
	}
	return rows
}

// baseline is the value wattd's is compared with: the named baseline's, or
// for the all-runs rows the sum over the baselines that ran.
func (r *row) baseline() *float64 {
	switch r.Baseline {
	case "cluster":
		return r.Cluster
	case "tcp":
		return r.TCP
	}
	var sum *float64
	for _, v := range []*float64{r.Cluster, r.TCP} {
		if v != nil {
			if sum == nil {
				sum = new(float64)
			}
			*sum += *v
		}
	}
	return sum
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

// spread returns "min..max" of a load metric over a target's clean runs of a
// scenario, or "" with fewer than two runs.
func spread(records []runRecord, tgt, scenario string, f func(l *loadSummary) float64) string {
	var vals []float64
	for _, r := range records {
		if r.Target == tgt && r.Scenario == scenario && r.Error == "" && r.Load != nil {
			vals = append(vals, f(r.Load))
		}
	}
	if len(vals) < 2 {
		return ""
	}
	return fmt.Sprintf("%.0f..%.0f", slices.Min(vals), slices.Max(vals))
}

func printReport(w io.Writer, cfg config, env benchEnv, records []runRecord, rows []row, problems []string) {
	conns := fmt.Sprintf("%d conns", cfg.conns)
	meshRan := false
	for _, r := range records {
		meshRan = meshRan || r.Scenario == "mesh"
	}
	if meshRan && cfg.meshConns != cfg.conns {
		conns += fmt.Sprintf(" (mesh %d)", cfg.meshConns)
	}
	fmt.Fprintf(w, "\nwattbench: %d CPUs, kernel %s, node %s, %s, %s load after %s warm-up, %d round(s)\n\n",
		runtime.NumCPU(), env.kernel, env.nodeVersion, conns, cfg.duration, cfg.warmup, cfg.rounds)
	printTable(w, rows)

	fmt.Fprintln(w)
	for _, r := range rows {
		switch r.Metric {
		case "throughput: load generator CPU":
			fmt.Fprintf(w, "load generator CPU as a share of the machine (%d CPUs): wattd run %s, cluster run %s\n",
				runtime.NumCPU(), share(r.Wattd), share(r.Cluster))
		case "mesh: load generator CPU":
			fmt.Fprintf(w, "mesh load generator CPU as a share of the machine (%d CPUs): wattd run %s, tcp run %s\n",
				runtime.NumCPU(), share(r.Wattd), share(r.TCP))
		}
	}
	// Run-to-run spread, so that a ratio near 1 is read against the noise
	// of the machine rather than taken as a verdict.
	rps := func(l *loadSummary) float64 { return l.RPS }
	for _, sc := range []string{"throughput", "crash", "mesh"} {
		var parts []string
		for _, t := range cfg.targets {
			if s := spread(records, t, sc, rps); s != "" {
				parts = append(parts, t+" "+s)
			}
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "%s requests/s over rounds: %s\n", sc, strings.Join(parts, ", "))
		}
	}
	printTracing(w, records)
	if len(problems) > 0 {
		fmt.Fprintf(w, "\nproblems:\n")
		for _, p := range problems {
			fmt.Fprintln(w, "  - "+strings.ReplaceAll(p, "\n", "\n    "))
		}
	}
}

// printTable prints the summary rows as one table. Each scenario's rows
// compare wattd with that scenario's baseline, so a header line names the
// baseline column whenever it changes: "cluster" for startup, throughput and
// crash, "tcp" for mesh. The all-runs rows come last; when both baselines
// ran they show both, side by side, instead of a ratio.
func printTable(w io.Writer, rows []row) {
	both := false
	for _, r := range rows {
		both = both || (r.Baseline == "" && r.Cluster != nil && r.TCP != nil)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header, last := "", ""
	for _, r := range rows {
		var cells string
		switch {
		case r.Baseline == "" && both:
			header = "metric\tunit\twattd\tcluster\ttcp\tgoal\tresult"
			cells = fmtVal(r.Wattd, r.prec) + "\t" + fmtVal(r.Cluster, r.prec) + "\t" + fmtVal(r.TCP, r.prec)
		default:
			name := r.Baseline
			if name == "" {
				// One baseline ran: its column is the one already shown.
				name = "cluster"
				if r.Cluster == nil && r.TCP != nil {
					name = "tcp"
				}
			}
			header = "metric\tunit\twattd\t" + name + "\twattd/" + name + "\tgoal\tresult"
			cells = fmtVal(r.Wattd, r.prec) + "\t" + fmtVal(r.baseline(), r.prec) + "\t" + fmtVal(r.Ratio, 2)
		}
		if header != last {
			if last != "" {
				fmt.Fprintln(tw, "\t\t\t\t\t\t")
			}
			fmt.Fprintln(tw, header)
			last = header
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Metric, r.Unit, cells, r.Goal, r.Result)
	}
	tw.Flush()
}

func share(cores *float64) string {
	if cores == nil {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100**cores/float64(runtime.NumCPU()))
}

func fmtVal(v *float64, prec int) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.*f", prec, *v)
}
