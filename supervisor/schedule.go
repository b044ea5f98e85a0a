package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/wattd/wattd/mesh"
	"github.com/wattd/wattd/supervisor/config"
	"github.com/wattd/wattd/supervisor/scheduler"
)

// startScheduler starts the configuration's scheduler jobs, once the
// runtime is ready (as Watt starts them once its applications have).
func (rt *Runtime) startScheduler() {
	rt.schedMu.Lock()
	defer rt.schedMu.Unlock()
	if rt.sched != nil || rt.schedStopped {
		return
	}
	// http://ID.plt.local goes through the mesh, other URLs out as they
	// are, without the environment's proxy (as Watt's undici).
	out := http.DefaultTransport.(*http.Transport).Clone()
	out.Proxy = nil
	client := &http.Client{
		Transport: &mesh.Transport{Resolver: rt, Fallback: out},
		// A redirect is not followed, as undici's request follows none:
		// the status of the callbackUrl itself counts (a 3xx fails).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	rt.sched = scheduler.New(client, rt.log.Named("scheduler"))
	rt.sched.Set(schedulerJobs(rt.current.Load()))
}

// setScheduler applies a reloaded configuration's jobs.
func (rt *Runtime) setScheduler(cfg *config.Config) {
	rt.schedMu.Lock()
	defer rt.schedMu.Unlock()
	if rt.sched != nil {
		rt.sched.Set(schedulerJobs(cfg))
	}
}

// stopScheduler ends the jobs, first thing in a stop: none starts while
// the applications drain.
func (rt *Runtime) stopScheduler() {
	rt.schedMu.Lock()
	s := rt.sched
	rt.schedStopped = true
	rt.schedMu.Unlock()
	if s != nil {
		s.Stop()
	}
}

func schedulerJobs(cfg *config.Config) []scheduler.Job {
	jobs := make([]scheduler.Job, 0, len(cfg.Scheduler))
	for _, j := range cfg.Scheduler {
		jobs = append(jobs, j.Job())
	}
	return jobs
}

// startedScheduler is the scheduler once the runtime has started it, or
// an error matching ErrConflict before.
func (rt *Runtime) startedScheduler() (*scheduler.Service, error) {
	rt.schedMu.Lock()
	defer rt.schedMu.Unlock()
	if rt.sched == nil {
		return nil, conflict("the scheduler starts once the runtime is ready")
	}
	return rt.sched, nil
}

// SchedulerJobs lists the scheduler's jobs (none before the runtime is
// ready).
func (rt *Runtime) SchedulerJobs() []scheduler.Status {
	s, err := rt.startedScheduler()
	if err != nil {
		return []scheduler.Status{}
	}
	return s.List()
}

// PauseSchedulerJob stops the job named name from running on its
// schedule until ResumeSchedulerJob, and answers its status; an unknown
// name gives an error matching ErrNotFound.
func (rt *Runtime) PauseSchedulerJob(name string) (scheduler.Status, error) {
	return rt.pauseSchedulerJob(name, true)
}

// ResumeSchedulerJob lets a paused job run on its schedule again.
func (rt *Runtime) ResumeSchedulerJob(name string) (scheduler.Status, error) {
	return rt.pauseSchedulerJob(name, false)
}

func (rt *Runtime) pauseSchedulerJob(name string, pause bool) (scheduler.Status, error) {
	s, err := rt.startedScheduler()
	if err != nil {
		return scheduler.Status{}, err
	}
	set := s.Resume
	if pause {
		set = s.Pause
	}
	st, err := set(name)
	if errors.Is(err, scheduler.ErrUnknownJob) {
		return st, unknownJob(s, name)
	}
	return st, err
}

// unknownJob is the error for a job name s does not have.
func unknownJob(s *scheduler.Service, name string) error {
	var names []string
	for _, j := range s.List() {
		names = append(names, j.Name)
	}
	if len(names) == 0 {
		return notFound(fmt.Sprintf("no scheduler job %q (there are no jobs)", name))
	}
	return notFound(fmt.Sprintf("no scheduler job %q (jobs: %s)", name, strings.Join(names, ", ")))
}

// RunSchedulerJob runs the job named name now and says whether it
// succeeded; an unknown name gives an error matching ErrNotFound.
func (rt *Runtime) RunSchedulerJob(ctx context.Context, name string) (bool, error) {
	s, err := rt.startedScheduler()
	if err != nil {
		return false, err
	}
	ok, err := s.Run(ctx, name)
	switch {
	case errors.Is(err, scheduler.ErrUnknownJob):
		return false, unknownJob(s, name)
	case errors.Is(err, scheduler.ErrRunning):
		return false, conflict(fmt.Sprintf("scheduler job %q is running now; try again when it is done", name))
	}
	return ok, err
}
