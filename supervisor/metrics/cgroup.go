package metrics

import (
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wattd/wattd/supervisor"
)

// ownFamilies are the series of what wattd itself sees of a worker slot
// beyond its process: how long its workers took to start and a crashed
// worker's replacement took to be ready, what the
// kernel did to its cgroup (OOM kills, CPU throttling, pressure stalls),
// and the output lines lost on the way to the log.
type ownFamilies struct {
	startDuration, replacement                 *prometheus.Desc
	cgroupOOMKills                             *prometheus.Desc
	cpuPeriods, cpuThrottled, cpuThrottledTime *prometheus.Desc
	// waiting and stalled are PSI's "some" and "full" totals, by
	// resource, named as node_exporter and cAdvisor name theirs.
	waiting, stalled           map[string]*prometheus.Desc
	linesDropped, linesTrimmed *prometheus.Desc
}

// pressureResources are the PSI resources, in the order of the files.
var pressureResources = []string{"cpu", "memory", "io"}

func newOwnFamilies(d func(name, help string, labels []string) *prometheus.Desc) ownFamilies {
	w := []string{appLabel, workerLabel}
	f := ownFamilies{
		startDuration: d("wattd_worker_start_duration_seconds", "Time from spawning a worker to its being ready, for the application's workers that became ready.", []string{appLabel}),
		replacement:   d("wattd_worker_replacement_seconds", "Time from noticing that a ready worker of the application exited to its slot's next worker being ready: what a crash costs the slot, restart backoff and failed attempts included.", []string{appLabel}),
		cgroupOOMKills: d("wattd_worker_cgroup_oom_kills_total",
			"Processes the kernel's OOM killer killed in the cgroups of the slot's workers (memory.events or memory.oom_control oom_kill), whether or not the worker itself ended.", w),
		cpuPeriods:       d("wattd_worker_cpu_periods_total", "CFS bandwidth periods the current worker's cgroup ran in (cpu.stat nr_periods); only with a CPU limit.", w),
		cpuThrottled:     d("wattd_worker_cpu_throttled_periods_total", "Periods in which the current worker's cgroup used up its CPU quota and was held back (cpu.stat nr_throttled).", w),
		cpuThrottledTime: d("wattd_worker_cpu_throttled_seconds_total", "Time the current worker's cgroup was held back by its CPU limit (cpu.stat throttled_usec or throttled_time).", w),
		waiting:          map[string]*prometheus.Desc{},
		stalled:          map[string]*prometheus.Desc{},
		linesDropped:     d("wattd_worker_log_lines_dropped_total", "Output lines of the slot's workers dropped because the log fell behind and the slot's bounded queue was full.", w),
		linesTrimmed:     d("wattd_worker_log_lines_truncated_total", "Output lines of the slot's workers longer than the line limit, logged cut at the limit.", w),
	}
	for _, r := range pressureResources {
		f.waiting[r] = d("wattd_worker_pressure_"+r+"_waiting_seconds_total",
			"Time some tasks of the current worker's cgroup waited for "+r+" (PSI "+r+".pressure some total); cgroup v2 only.", w)
		f.stalled[r] = d("wattd_worker_pressure_"+r+"_stalled_seconds_total",
			"Time all non-idle tasks of the current worker's cgroup waited for "+r+" at once (PSI "+r+".pressure full total); cgroup v2 only.", w)
	}
	return f
}

func (f *ownFamilies) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{f.startDuration, f.replacement, f.cgroupOOMKills, f.cpuPeriods, f.cpuThrottled, f.cpuThrottledTime, f.linesDropped, f.linesTrimmed} {
		ch <- d
	}
	for _, r := range pressureResources {
		ch <- f.waiting[r]
		ch <- f.stalled[r]
	}
}

// collectApp exports the application's start durations and replacement
// times as histograms over its slots.
func (f *ownFamilies) collectApp(ch chan<- prometheus.Metric, a supervisor.AppStatus) {
	ch <- appHistogram(f.startDuration, supervisor.StartBuckets[:], a, func(w supervisor.WorkerStatus) (int, float64, []uint64) {
		return w.Starts, w.StartTime, w.StartsWithin
	})
	ch <- appHistogram(f.replacement, supervisor.ReplacementBuckets[:], a, func(w supervisor.WorkerStatus) (int, float64, []uint64) {
		return w.Replacements, w.ReplacementTime, w.ReplacementsWithin
	})
}

// appHistogram sums one histogram of every slot of a (its count, sum and
// cumulative counts by bound, as of gives them) into the application's,
// with the slots a scale-down took away (AppStatus.Former).
func appHistogram(d *prometheus.Desc, bounds []float64, a supervisor.AppStatus, of func(supervisor.WorkerStatus) (int, float64, []uint64)) prometheus.Metric {
	var count uint64
	var sum float64
	buckets := make(map[float64]uint64, len(bounds))
	for _, le := range bounds {
		buckets[le] = 0
	}
	slots := a.Workers
	if f := a.Former; f != nil {
		slots = append(slices.Clone(slots), supervisor.WorkerStatus{
			Starts: f.Starts, StartTime: f.StartTime, StartsWithin: f.StartsWithin,
			Replacements: f.Replacements, ReplacementTime: f.ReplacementTime, ReplacementsWithin: f.ReplacementsWithin,
		})
	}
	for _, w := range slots {
		n, s, within := of(w)
		count += uint64(n)
		sum += s
		for i, c := range within {
			buckets[bounds[i]] += c
		}
	}
	return prometheus.MustNewConstHistogram(d, count, sum, buckets, a.ID)
}

// collectWorker exports one slot's series. Those of the cgroup are
// absent where it gives none: no cgroups, no CPU limit (v1), no PSI (v1).
func (f *ownFamilies) collectWorker(ch chan<- prometheus.Metric, app string, w supervisor.WorkerStatus) {
	id := strconv.Itoa(w.Index)
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, app, id)
	}
	counter(f.linesDropped, float64(w.LogLinesDropped))
	counter(f.linesTrimmed, float64(w.LogLinesTruncated))
	if w.CgroupOOMKills != nil {
		counter(f.cgroupOOMKills, float64(*w.CgroupOOMKills))
	}
	if t := w.CPUThrottling; t != nil {
		counter(f.cpuPeriods, float64(t.Periods))
		counter(f.cpuThrottled, float64(t.ThrottledPeriods))
		counter(f.cpuThrottledTime, t.ThrottledSeconds)
	}
	if p := w.Pressure; p != nil {
		for r, s := range map[string]*supervisor.Stall{"cpu": p.CPU, "memory": p.Memory, "io": p.IO} {
			if s == nil {
				continue
			}
			counter(f.waiting[r], s.SomeSeconds)
			if s.FullSeconds != nil {
				counter(f.stalled[r], *s.FullSeconds)
			}
		}
	}
}
