// Package scheduler runs the runtime's "scheduler" jobs, as Watt does: at
// each time a job's cron expression allows (UTC), an HTTP request to its
// callbackUrl, which may be an application's mesh address
// (http://<app>.plt.local/…), tried up to maxRetries times.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wattd/wattd/supervisor/secrets"

	"go.uber.org/zap"
)

// Job is one scheduler entry of the configuration.
type Job struct {
	Name     string
	Cron     string
	Schedule *Schedule
	URL      string
	Method   string
	Headers  map[string]string
	// Body is sent as is; HasBody is false for a GET or HEAD without one.
	Body    string
	HasBody bool
	// MaxRetries is how many attempts a run makes at most (Watt's name
	// for it); 0 makes none.
	MaxRetries int
}

// retryBase is the wait before the second attempt; each further one
// waits twice as long (200 ms, 400 ms, 800 ms, …), as Watt's.
const retryBase = 200 * time.Millisecond

// requestTimeout bounds one attempt, as undici's default header and body
// timeouts do Watt's.
const requestTimeout = 5 * time.Minute

// Status is what `wattd ctl scheduler` shows of a job.
type Status struct {
	Name           string     `json:"name"`
	Cron           string     `json:"cron"`
	CallbackURL    string     `json:"callbackUrl"`
	Method         string     `json:"method"`
	MaxRetries     int        `json:"maxRetries"`
	NextRunAt      *time.Time `json:"nextRunAt"`
	LastExecutedAt *time.Time `json:"lastExecutedAt"`
	LastStatus     string     `json:"lastStatus,omitempty"` // "success" or "failed"
	Running        bool       `json:"running"`
	// Paused: the job's schedule does not run it until resumed (Run
	// still does).
	Paused bool `json:"paused"`
	// Successes and Failures count the job's runs since it was set up
	// (each with its retries); LastSuccessAt is the last that succeeded.
	Successes     int        `json:"successes"`
	Failures      int        `json:"failures"`
	LastSuccessAt *time.Time `json:"lastSuccessAt,omitempty"`
}

// Service runs jobs until Stop.
type Service struct {
	client *http.Client
	log    *zap.Logger

	mu      sync.Mutex
	ctx     context.Context
	cancel  context.CancelFunc
	jobs    map[string]*running
	order   []string
	stopped bool
	wg      sync.WaitGroup
}

type running struct {
	job    Job
	stop   context.CancelFunc
	mu     sync.Mutex // one run at a time
	next   time.Time
	last   time.Time
	status string
	busy   bool
	paused bool
	// successes, failures and lastOK: see Status.
	successes, failures int
	lastOK              time.Time
	// changed wakes the loop when the job is paused or resumed.
	changed chan struct{}
}

// New returns a Service that sends its requests with client.
func New(client *http.Client, log *zap.Logger) *Service {
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{client: client, log: log, ctx: ctx, cancel: cancel, jobs: map[string]*running{}}
}

// Set makes jobs the ones that run: a job whose configuration is the
// same keeps its schedule and last run, the others start afresh, and those
// no longer there stop (a run in progress finishes its attempt).
func (s *Service) Set(jobs []Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	keep := map[string]bool{}
	var order []string
	for _, j := range jobs {
		order = append(order, j.Name)
		if r, ok := s.jobs[j.Name]; ok && reflect.DeepEqual(r.job, j) { // Schedule compared by value
			keep[j.Name] = true
			continue
		}
		if r, ok := s.jobs[j.Name]; ok {
			r.stop()
			delete(s.jobs, j.Name)
		}
		ctx, stop := context.WithCancel(s.ctx)
		r := &running{job: j, stop: stop, changed: make(chan struct{}, 1)}
		s.jobs[j.Name] = r
		keep[j.Name] = true
		s.log.Info(fmt.Sprintf("Configuring scheduler %q with cron %q", j.Name, j.Cron), zap.String("job", j.Name))
		s.wg.Go(func() { s.loop(ctx, r) })
	}
	for name, r := range s.jobs {
		if !keep[name] {
			r.stop()
			delete(s.jobs, name)
			s.log.Info(fmt.Sprintf("Scheduler %q removed", name), zap.String("job", name))
		}
	}
	s.order = order
}

// Stop ends every job: the ones waiting at once, a run in progress as
// soon as its request is cancelled.
func (s *Service) Stop() {
	s.mu.Lock()
	s.stopped = true
	s.cancel()
	s.mu.Unlock()
	s.wg.Wait()
}

// loop runs r at each time its schedule allows. Times that come while a
// run is still in progress are skipped, as Watt's waitForCompletion does.
func (s *Service) loop(ctx context.Context, r *running) {
	for {
		r.mu.Lock()
		paused := r.paused
		next := time.Time{}
		if !paused {
			next = r.job.Schedule.Next(time.Now())
		}
		r.next = next
		r.mu.Unlock()
		if paused {
			select {
			case <-ctx.Done():
				return
			case <-r.changed:
				continue
			}
		}
		if next.IsZero() {
			s.log.Warn(fmt.Sprintf("Scheduler %q: its cron %q allows no time in the next eight years; it never runs", r.job.Name, r.job.Cron), zap.String("job", r.job.Name))
			return
		}
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.changed:
			t.Stop()
			continue
		case <-t.C:
		}
		r.mu.Lock()
		paused = r.paused
		r.mu.Unlock()
		if paused {
			continue
		}
		s.log.Info(fmt.Sprintf("Executing scheduler %q", r.job.Name), zap.String("job", r.job.Name))
		if _, ran := s.execute(ctx, r); !ran {
			// `ctl scheduler run` has it running: this time is skipped,
			// as one that comes during a run is.
			s.log.Info(fmt.Sprintf("Scheduler %q is running already; this time is skipped", r.job.Name), zap.String("job", r.job.Name))
		}
	}
}

// ErrUnknownJob and ErrRunning are Run's refusals.
var (
	ErrUnknownJob = errors.New("no such scheduler job")
	ErrRunning    = errors.New("the job is running now")
)

// Run runs the job named name now, whatever its schedule, and says
// whether it succeeded. It refuses a name it does not know, and a job
// that is running already.
func (s *Service) Run(ctx context.Context, name string) (bool, error) {
	s.mu.Lock()
	r, ok := s.jobs[name]
	s.mu.Unlock()
	if !ok {
		return false, ErrUnknownJob
	}
	success, ran := s.execute(ctx, r)
	if !ran {
		return false, ErrRunning
	}
	return success, nil
}

// Pause stops the job's schedule from running it until Resume, and
// Resume lets it run again, each answering the job's status; doing either
// twice changes nothing. Neither touches a run in progress, and Run still
// runs a paused job (as Watt's, for a coordinator that runs it elsewhere).
func (s *Service) Pause(name string) (Status, error) { return s.setPaused(name, true) }

// Resume: see Pause.
func (s *Service) Resume(name string) (Status, error) { return s.setPaused(name, false) }

func (s *Service) setPaused(name string, paused bool) (Status, error) {
	s.mu.Lock()
	r, ok := s.jobs[name]
	s.mu.Unlock()
	if !ok {
		return Status{}, ErrUnknownJob
	}
	r.mu.Lock()
	changed := r.paused != paused
	r.paused = paused
	if paused {
		r.next = time.Time{}
	} else if changed {
		// What the loop is about to wait for, so that the answer has it.
		r.next = r.job.Schedule.Next(time.Now())
	}
	r.mu.Unlock()
	if changed {
		select {
		case r.changed <- struct{}{}:
		default:
		}
		word := "resumed"
		if paused {
			word = "paused"
		}
		s.log.Info(fmt.Sprintf("Scheduler %q %s", name, word), zap.String("job", name))
	}
	return s.status(r), nil
}

// execute runs r with its retries, unless it is running already (ran is
// false then).
func (s *Service) execute(ctx context.Context, r *running) (success, ran bool) {
	r.mu.Lock()
	if r.busy {
		r.mu.Unlock()
		return false, false
	}
	r.busy = true
	r.mu.Unlock()
	j := r.job
	for attempt := 0; attempt < j.MaxRetries && !success; attempt++ {
		if attempt > 0 {
			delay := retryBase << (attempt - 1)
			s.log.Info(fmt.Sprintf("Retrying scheduler %q in %dms (attempt %d/%d)", j.Name, delay.Milliseconds(), attempt+1, j.MaxRetries), zap.String("job", j.Name))
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				attempt = j.MaxRetries
				continue
			case <-t.C:
			}
		}
		if err := s.call(ctx, j, attempt+1); err != nil {
			s.log.Error(fmt.Sprintf("Error executing scheduler %q (attempt %d/%d): %s", j.Name, attempt+1, j.MaxRetries, err), zap.String("job", j.Name))
			continue
		}
		s.log.Info(fmt.Sprintf("Scheduler %q executed successfully", j.Name), zap.String("job", j.Name))
		success = true
	}
	if !success {
		s.log.Error(fmt.Sprintf("Scheduler %q failed after %d attempts", j.Name, j.MaxRetries), zap.String("job", j.Name))
	}
	r.mu.Lock()
	r.busy = false
	r.last = time.Now().UTC()
	r.status = "failed"
	if success {
		r.status = "success"
		r.successes++
		r.lastOK = r.last
	} else {
		r.failures++
	}
	r.mu.Unlock()
	return success, true
}

// call sends one attempt: a status outside 2xx is a failure.
func (s *Service) call(ctx context.Context, j Job, attempt int) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var body io.Reader
	if j.HasBody {
		body = strings.NewReader(j.Body)
	}
	req, err := http.NewRequestWithContext(ctx, j.Method, j.URL, body)
	if err != nil {
		return err
	}
	req.Header.Set("X-Retry-Attempt", strconv.Itoa(attempt))
	for k, v := range j.Headers {
		req.Header.Set(k, v)
	}
	if j.HasBody && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			return ue.Unwrap()
		}
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("HTTP error %d", resp.StatusCode)
	}
	return nil
}

// List is every job's status, in the configuration's order.
func (s *Service) List() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Status{}
	for _, name := range s.order {
		r, ok := s.jobs[name]
		if !ok {
			continue
		}
		out = append(out, s.status(r))
	}
	return out
}

// status is r's Status.
func (s *Service) status(r *running) Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := Status{Name: r.job.Name, Cron: r.job.Cron, CallbackURL: secrets.URL(r.job.URL), Method: r.job.Method, MaxRetries: r.job.MaxRetries, LastStatus: r.status, Running: r.busy, Paused: r.paused,
		Successes: r.successes, Failures: r.failures}
	if !r.lastOK.IsZero() {
		ok := r.lastOK
		st.LastSuccessAt = &ok
	}
	if !r.next.IsZero() {
		n := r.next
		st.NextRunAt = &n
	}
	if !r.last.IsZero() {
		l := r.last
		st.LastExecutedAt = &l
	}
	return st
}
