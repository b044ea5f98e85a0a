package admin

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"text/tabwriter"

	"github.com/wattd/wattd/supervisor"
)

// WorkerFigures is one worker slot's row of `wattd ctl metrics`: the
// figures the metrics endpoint exports, read from the same status.
type WorkerFigures struct {
	App         string  `json:"applicationId"`
	Worker      int     `json:"workerId"`
	PID         int     `json:"pid"`
	State       string  `json:"state"`
	CPU         float64 `json:"cpuSeconds"`
	RSS         uint64  `json:"rssBytes"`
	OpenFDs     int     `json:"openFds"`
	Memory      uint64  `json:"memoryBytes"`
	MemoryLimit uint64  `json:"memoryLimitBytes,omitempty"`
	// Node.js figures, as the worker last reported them; absent for a
	// worker that reports none.
	ELU         *float64 `json:"eventLoopUtilization,omitempty"`
	HeapUsed    uint64   `json:"heapUsedBytes,omitempty"`
	HeapTotal   uint64   `json:"heapTotalBytes,omitempty"`
	ActiveConns int      `json:"activeConnections"`
	// With metrics on, what a Node worker reports beyond that: the 99th
	// percentile of its event-loop delay over its last stats period, its
	// garbage collections and the time they took since it started, and
	// the requests it received.
	LagP99    *float64 `json:"eventLoopLagP99Seconds,omitempty"`
	GCCount   uint64   `json:"gcCount,omitempty"`
	GCSeconds float64  `json:"gcSeconds,omitempty"`
	Requests  *uint64  `json:"requests,omitempty"`
	// RequestP99 is the 99th percentile of the duration of the requests
	// it served in about the last minute (http_request_all_summary_seconds,
	// every method and status together); absent when it served none.
	RequestP99 *float64 `json:"requestP99Seconds,omitempty"`
	Restarts   int      `json:"restarts"`
	OOMKills   int      `json:"oomKills"`
	// StartSeconds is the mean time its workers took to become ready.
	StartSeconds float64 `json:"meanStartSeconds"`
	// What the worker's cgroup reports, each absent where it gives none
	// (no cgroups; no CPU limit on v1; PSI on v2 only).
	CgroupOOMKills *uint64                   `json:"cgroupOomKills,omitempty"`
	CPUThrottling  *supervisor.CPUThrottling `json:"cpuThrottling,omitempty"`
	Pressure       *supervisor.Pressure      `json:"pressure,omitempty"`
	// Output lines of the slot's workers lost on the way to the log.
	LogLinesDropped   uint64 `json:"logLinesDropped"`
	LogLinesTruncated uint64 `json:"logLinesTruncated"`
}

// Figures flattens apps into one row per worker slot.
func Figures(apps []supervisor.AppStatus) []WorkerFigures {
	out := []WorkerFigures{}
	for _, a := range apps {
		for _, w := range a.Workers {
			f := WorkerFigures{
				App: a.ID, Worker: w.Index, PID: w.PID, State: w.State,
				CPU: w.CPU, RSS: w.RSS, OpenFDs: w.OpenFDs, Memory: w.Memory, MemoryLimit: w.MemoryLimit,
				ActiveConns: w.ActiveConns, Restarts: w.Restarts, OOMKills: w.OOMKills,
				CgroupOOMKills: w.CgroupOOMKills, CPUThrottling: w.CPUThrottling, Pressure: w.Pressure,
				LogLinesDropped: w.LogLinesDropped, LogLinesTruncated: w.LogLinesTruncated,
			}
			if w.HeapTotal > 0 {
				elu := w.ELU
				f.ELU, f.HeapUsed, f.HeapTotal = &elu, w.HeapUsed, w.HeapTotal
			}
			if w.Lag != nil {
				p99 := w.Lag.P99
				f.LagP99 = &p99
			}
			if w.GC != nil {
				for _, s := range w.GC.Series {
					for _, n := range s.Counts {
						f.GCCount += n
					}
					if t := f.GCSeconds + s.Sum; !math.IsInf(t, 0) && !math.IsNaN(t) {
						f.GCSeconds = t // a worker's absurd sums must not make the JSON unencodable
					}
				}
			}
			if w.Requests != nil || w.RequestsDone > 0 {
				n := w.RequestsDone
				f.Requests = &n // 0 too: metrics are on
			}
			if p99, ok := w.Requests.RecentQuantile(0.99); ok {
				f.RequestP99 = &p99
			}
			if w.Starts > 0 {
				f.StartSeconds = w.StartTime / float64(w.Starts)
			}
			out = append(out, f)
		}
	}
	return out
}

// RenderFigures writes `wattd ctl metrics` as a table, one row per worker.
func RenderFigures(w io.Writer, rows []WorkerFigures) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tWORKER\tPID\tSTATE\tCPU\tRSS\tFDS\tMEMORY\tELU\tHEAP\tLAG P99\tGC\tREQUESTS\tREQ P99\tCONNS\tRESTARTS\tOOM\tSTART\tCG-OOM\tTHROTTLED\tPRESSURE\tLOG-DROP")
	dash := func(ok bool, s string) string {
		if !ok {
			return "-"
		}
		return s
	}
	for _, r := range rows {
		mem := dash(r.Memory > 0, supervisor.FormatBytes(r.Memory))
		if r.MemoryLimit > 0 {
			mem += " / " + supervisor.FormatBytes(r.MemoryLimit)
		}
		elu, heap := "-", "-"
		if r.ELU != nil {
			elu = fmt.Sprintf("%.0f%%", *r.ELU*100)
			heap = supervisor.FormatBytes(r.HeapUsed) + " / " + supervisor.FormatBytes(r.HeapTotal)
		}
		lag := "-"
		if r.LagP99 != nil {
			lag = fmt.Sprintf("%.1fms", *r.LagP99*1000)
		}
		reqP99 := "-"
		requests := "-"
		if r.Requests != nil {
			requests = strconv.FormatUint(*r.Requests, 10)
		}
		if r.RequestP99 != nil {
			reqP99 = fmt.Sprintf("%.1fms", *r.RequestP99*1000)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n",
			cell(r.App), r.Worker, dash(r.PID > 0, strconv.Itoa(r.PID)), cell(r.State),
			dash(r.PID > 0, fmt.Sprintf("%.2fs", r.CPU)), dash(r.RSS > 0, supervisor.FormatBytes(r.RSS)),
			dash(r.OpenFDs > 0, strconv.Itoa(r.OpenFDs)), mem, elu, heap,
			lag, dash(r.GCCount > 0, fmt.Sprintf("%d / %.2fs", r.GCCount, r.GCSeconds)), requests, reqP99,
			r.ActiveConns, r.Restarts, r.OOMKills, dash(r.StartSeconds > 0, fmt.Sprintf("%.2fs", r.StartSeconds)),
			cgroupCells(r))
	}
	tw.Flush()
}

// cgroupCells renders the cgroup and log columns of a row: the kernel's
// OOM kills in the slot's cgroups; periods throttled of periods run and
// the time held back; the PSI "some" totals of cpu/memory/io; output
// lines dropped, and those cut at the line limit.
func cgroupCells(r WorkerFigures) string {
	oom, throttled, pressure := "-", "-", "-"
	if r.CgroupOOMKills != nil {
		oom = strconv.FormatUint(*r.CgroupOOMKills, 10)
	}
	if t := r.CPUThrottling; t != nil {
		throttled = fmt.Sprintf("%d/%d %.2fs", t.ThrottledPeriods, t.Periods, t.ThrottledSeconds)
	}
	if p := r.Pressure; p != nil {
		some := func(s *supervisor.Stall) string {
			if s == nil {
				return "-"
			}
			return fmt.Sprintf("%.2fs", s.SomeSeconds)
		}
		pressure = some(p.CPU) + "/" + some(p.Memory) + "/" + some(p.IO)
	}
	logs := strconv.FormatUint(r.LogLinesDropped, 10)
	if r.LogLinesTruncated > 0 {
		logs += fmt.Sprintf(" (%d cut)", r.LogLinesTruncated)
	}
	return oom + "\t" + throttled + "\t" + pressure + "\t" + logs
}
