package metrics

import (
	"reflect"
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor/scheduler"
)

// withJobs is a snapshot whose runtime runs scheduler jobs.
type withJobs struct {
	snapshot
	jobs []scheduler.Status
}

func (w withJobs) SchedulerJobs() []scheduler.Status { return w.jobs }

// TestSchedulerSeries: each job's runs by result, its paused state, and
// the times of its last run, last success and next run, each absent until
// there is one.
func TestSchedulerSeries(t *testing.T) {
	last := time.Unix(1700000000, 500e6)
	ok := time.Unix(1699999000, 0)
	next := time.Unix(1700000060, 0)
	fams := gather(t, withJobs{jobs: []scheduler.Status{
		{Name: "report", Successes: 3, Failures: 1, LastExecutedAt: &last, LastSuccessAt: &ok, NextRunAt: &next},
		{Name: "never", Paused: true},
	}})
	for name, want := range map[string]map[string]float64{
		"wattd_scheduler_runs_total": {
			"job_name=report,result=success,": 3, "job_name=report,result=failed,": 1,
			"job_name=never,result=success,": 0, "job_name=never,result=failed,": 0,
		},
		"wattd_scheduler_paused":                         {"job_name=report,": 0, "job_name=never,": 1},
		"wattd_scheduler_last_run_timestamp_seconds":     {"job_name=report,": 1700000000.5},
		"wattd_scheduler_last_success_timestamp_seconds": {"job_name=report,": 1699999000},
		"wattd_scheduler_next_run_timestamp_seconds":     {"job_name=report,": 1700000060},
	} {
		if got := series(fams[name]); !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	// A runtime without a scheduler exports none of them.
	if f := gather(t, snapshot{})["wattd_scheduler_runs_total"]; f != nil {
		t.Errorf("series without a scheduler: %v", f)
	}
}
