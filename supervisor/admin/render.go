package admin

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wattd/wattd/supervisor"
	"github.com/wattd/wattd/supervisor/scheduler"
)

// RenderPS writes `wattd ctl ps`: one row per worker slot, in the order
// the runtime reports apps (watt.json order), each followed by a row per
// former worker of the slot still on its way out (draining after a
// replacement took its place, or exiting). The entrypoint app is marked
// with '*'. A failed app's first row ends with the reason in parentheses,
// after the aligned columns so a long reason does not widen them. An app without
// worker slots still gets a row, so it cannot vanish from the listing.
func RenderPS(w io.Writer, apps []supervisor.AppStatus) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tWORKER\tPID\tSTATE\tRESTARTS\tLAST EXIT\tUPTIME\tRSS\tMEMORY")
	for _, app := range apps {
		name := cell(app.ID)
		if app.Entrypoint {
			name += "*"
		}
		reason := ""
		switch {
		case app.State == "failed" && app.Reason != "":
			reason = "\t(" + oneLine(app.Reason) + ")"
		case app.State == "down":
			// Every worker is between a death and its replacement: the
			// worker rows show it, this says it of the app.
			reason = "\t(down: no worker serves)"
		}
		if len(app.Workers) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t%s\t-\t-\t-\t-\t-%s\n", name, cell(app.State), reason)
			continue
		}
		for i, wk := range app.Workers {
			state := wk.State
			if state == "" {
				state = app.State
			}
			if wk.State == "backoff" && wk.RetryIn > 0 {
				state += fmt.Sprintf(" (%.1fs)", wk.RetryIn) // until the next start
			}
			pid, uptime := "-", "-"
			if wk.PID > 0 {
				pid = strconv.Itoa(wk.PID)
				uptime = FormatUptime(wk.Uptime)
			}
			rss, mem := "-", memCell(wk.Memory, wk.MemoryLimit)
			if wk.RSS > 0 {
				rss = supervisor.FormatBytes(wk.RSS)
			}
			tail := ""
			if i == 0 {
				tail = reason
			}
			if wk.WaitingFor != "" && tail == "" {
				tail = "\t(waiting for " + oneLine(wk.WaitingFor) + ")"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s%s\n",
				name, wk.Index, pid, cell(state), wk.Restarts, cell(wk.LastExit), uptime, rss, mem, tail)
			// Its replacement starting and its former workers still on
			// their way out, under it.
			others := wk.Leaving
			if wk.Replacement != nil {
				others = append([]supervisor.LeavingWorker{*wk.Replacement}, others...)
			}
			for _, l := range others {
				rss := "-"
				if l.RSS > 0 {
					rss = supervisor.FormatBytes(l.RSS)
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t-\t-\t%s\t%s\t-\n",
					name, wk.Index, l.PID, cell(l.State), FormatUptime(l.Uptime), rss)
			}
		}
		for _, sb := range app.Standbys {
			rss := "-"
			if sb.RSS > 0 {
				rss = supervisor.FormatBytes(sb.RSS)
			}
			fmt.Fprintf(tw, "%s\tstandby\t%d\t%s\t-\t-\t%s\t%s\t%s\n",
				name, sb.PID, cell(sb.State), FormatUptime(sb.Uptime), rss, memCell(sb.Memory, sb.MemoryLimit))
		}
	}
	tw.Flush()
}

// RenderStatus writes `wattd ctl status` as aligned "Field: value" lines.
func RenderStatus(w io.Writer, s *supervisor.RuntimeStatus) {
	if s == nil {
		fmt.Fprintln(w, "no status")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	started := "-"
	if !s.StartedAt.IsZero() {
		started = s.StartedAt.Format(time.RFC3339) + " (up " + FormatUptime(s.Uptime) + ")"
	}
	apps := strconv.Itoa(s.Apps)
	if len(s.FailedApps) > 0 {
		apps += " (failed: " + strings.Join(s.FailedApps, ", ") + ")"
	}
	pid := "-"
	if s.PID > 0 {
		pid = strconv.Itoa(s.PID)
	}
	rows := [][2]string{
		{"State", cell(s.State)},
		{"PID", pid},
		{"Version", cell(s.Version)},
		{"Project", cell(s.ProjectDir)},
		{"Config", cell(s.ConfigFile)},
		{"Entrypoint", cell(s.Entrypoint)},
		{"URL", cell(s.URL)},
		{"Started", started},
		{"Apps", apps},
		{"Workers", fmt.Sprintf("%d/%d ready", s.Ready, s.Workers)},
	}
	if p := s.MeshProxy; p != nil {
		rows = append(rows, [2]string{"Mesh proxy", fmt.Sprintf("%d connections open, %d refused (cap %d per listener)", p.Open, p.Refused, p.MaxConns)})
	}
	if s.LogLinesDropped > 0 {
		rows = append(rows, [2]string{"Log dropped", fmt.Sprintf("%d entries (output closed or failing)", s.LogLinesDropped)})
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s:\t%s\n", r[0], r[1])
	}
	tw.Flush()
}

// FormatUptime renders seconds with the two largest units: 3s, 2m10s,
// 1h2m, 3d4h. Negative or non-finite values render as "-".
func FormatUptime(seconds float64) string {
	if math.IsNaN(seconds) || math.IsInf(seconds, 0) || seconds < 0 {
		return "-"
	}
	t := int64(seconds)
	switch {
	case t < 60:
		return fmt.Sprintf("%ds", t)
	case t < 3600:
		return fmt.Sprintf("%dm%ds", t/60, t%60)
	case t < 86400:
		return fmt.Sprintf("%dh%dm", t/3600, t%3600/60)
	default:
		return fmt.Sprintf("%dd%dh", t/86400, t%86400/3600)
	}
}

// cell makes a value safe for one table cell: "-" when empty, and no tabs
// or newlines to break the alignment.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return oneLine(s)
}

func oneLine(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s))
}

// RenderReload prints what a reload did, one line per kind of change.
func RenderReload(w io.Writer, r *supervisor.ReloadResult) {
	if r == nil {
		fmt.Fprintln(w, "no result")
		return
	}
	list := func(ids []string) string {
		if len(ids) == 0 {
			return "-"
		}
		return strings.Join(ids, ", ")
	}
	counts := func(cs []supervisor.ScaleChange) string {
		out := make([]string, 0, len(cs))
		for _, s := range cs {
			out = append(out, fmt.Sprintf("%s %d->%d", s.App, s.From, s.To))
		}
		return list(out)
	}
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	fmt.Fprintf(tw, "Added\t%s\n", list(r.Added))
	fmt.Fprintf(tw, "Removed\t%s\n", list(r.Removed))
	fmt.Fprintf(tw, "Changed (rolled)\t%s\n", list(r.Changed))
	fmt.Fprintf(tw, "Scaled\t%s\n", counts(r.Scaled))
	if len(r.Standby) > 0 {
		fmt.Fprintf(tw, "Standby\t%s\n", counts(r.Standby))
	}
	fmt.Fprintf(tw, "Unchanged\t%s\n", list(r.Unchanged))
	tw.Flush()
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
}

// RenderScheduler writes `wattd ctl scheduler`: a row per job, its times
// in UTC as the schedule reads them.
func RenderScheduler(w io.Writer, jobs []scheduler.Status) {
	if len(jobs) == 0 {
		fmt.Fprintln(w, "no scheduler jobs (\"scheduler\" in watt.json)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCRON\tMETHOD\tCALLBACK URL\tNEXT RUN (UTC)\tLAST RUN (UTC)\tLAST STATUS")
	at := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.UTC().Format(time.DateTime)
	}
	for _, j := range jobs {
		status := j.LastStatus
		if j.Running {
			status = "running"
		} else if status == "" {
			status = "-"
		}
		next := at(j.NextRunAt)
		if j.Paused {
			next = "paused"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cell(j.Name), cell(j.Cron), j.Method, cell(j.CallbackURL), next, at(j.LastExecutedAt), status)
	}
	tw.Flush()
}

// memCell is the MEMORY column: the cgroup's usage, and " / limit" when
// there is one.
func memCell(used, limit uint64) string {
	mem := "-"
	if used > 0 {
		mem = supervisor.FormatBytes(used)
	}
	if limit > 0 {
		mem += " / " + supervisor.FormatBytes(limit)
	}
	return mem
}
