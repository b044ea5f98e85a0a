package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wattd/wattd/supervisor/scheduler"
)

// SchedulerSource is a Source that runs Watt's scheduler jobs; their runs
// are exported when the runtime implements it.
type SchedulerSource interface {
	SchedulerJobs() []scheduler.Status
}

// schedFamilies are the series of the scheduler's jobs: what an alert on
// a failing or silent cron job needs.
type schedFamilies struct {
	runs, lastRun, lastSuccess, nextRun, paused *prometheus.Desc
}

func newSchedFamilies(d func(name, help string, labels []string) *prometheus.Desc) schedFamilies {
	job := []string{"job_name"}
	return schedFamilies{
		runs: d("wattd_scheduler_runs_total",
			"Runs of the scheduler job (each with its retries) since it was set up, by result: success or failed.", []string{"job_name", "result"}),
		lastRun: d("wattd_scheduler_last_run_timestamp_seconds",
			"When the scheduler job's last run ended, in seconds since the Unix epoch; absent before its first.", job),
		lastSuccess: d("wattd_scheduler_last_success_timestamp_seconds",
			"When the scheduler job last succeeded, in seconds since the Unix epoch; absent before its first success.", job),
		nextRun: d("wattd_scheduler_next_run_timestamp_seconds",
			"When the scheduler job's schedule runs it next, in seconds since the Unix epoch; absent while it is paused.", job),
		paused: d("wattd_scheduler_paused", "1 while the scheduler job is paused, 0 otherwise.", job),
	}
}

func (f *schedFamilies) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{f.runs, f.lastRun, f.lastSuccess, f.nextRun, f.paused} {
		ch <- d
	}
}

func (f *schedFamilies) collect(ch chan<- prometheus.Metric, jobs []scheduler.Status) {
	for _, j := range jobs {
		ch <- prometheus.MustNewConstMetric(f.runs, prometheus.CounterValue, float64(j.Successes), j.Name, "success")
		ch <- prometheus.MustNewConstMetric(f.runs, prometheus.CounterValue, float64(j.Failures), j.Name, "failed")
		paused := 0.0
		if j.Paused {
			paused = 1
		}
		ch <- prometheus.MustNewConstMetric(f.paused, prometheus.GaugeValue, paused, j.Name)
		if j.LastExecutedAt != nil {
			ch <- prometheus.MustNewConstMetric(f.lastRun, prometheus.GaugeValue, float64(j.LastExecutedAt.UnixMilli())/1000, j.Name)
		}
		if j.LastSuccessAt != nil {
			ch <- prometheus.MustNewConstMetric(f.lastSuccess, prometheus.GaugeValue, float64(j.LastSuccessAt.UnixMilli())/1000, j.Name)
		}
		if j.NextRunAt != nil {
			ch <- prometheus.MustNewConstMetric(f.nextRun, prometheus.GaugeValue, float64(j.NextRunAt.UnixMilli())/1000, j.Name)
		}
	}
}
