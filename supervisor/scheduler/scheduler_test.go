package scheduler

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
)

func job(t *testing.T, name, cron, url string, retries int) Job {
	t.Helper()
	s, err := Parse(cron)
	if err != nil {
		t.Fatal(err)
	}
	return Job{Name: name, Cron: cron, Schedule: s, URL: url, Method: "GET", MaxRetries: retries}
}

// TestRunRetriesAndRefusesOverlap: a failing job is tried maxRetries
// times with x-retry-attempt counting up; a second run asked for while
// one is in progress is refused, not run beside it; an unknown name is
// refused.
func TestRunRetriesAndRefusesOverlap(t *testing.T) {
	var attempts atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/fail":
			if got, want := r.Header.Get("X-Retry-Attempt"), string(rune('0'+attempts.Add(1))); got != want {
				t.Errorf("x-retry-attempt %q, want %q", got, want)
			}
			w.WriteHeader(503)
		case "/slow":
			<-release
		}
	}))
	defer srv.Close()
	s := New(srv.Client(), zap.NewNop())
	defer s.Stop()
	s.Set([]Job{job(t, "fail", "0 0 1 1 *", srv.URL+"/fail", 3), job(t, "slow", "0 0 1 1 *", srv.URL+"/slow", 1)})

	start := time.Now()
	ok, err := s.Run(context.Background(), "fail")
	if ok || err != nil || attempts.Load() != 3 {
		t.Fatalf("run of a failing job: %v %v, %d attempts", ok, err, attempts.Load())
	}
	if took := time.Since(start); took < 600*time.Millisecond {
		t.Errorf("three attempts took %s, want the 200 + 400 ms between them", took)
	}
	if st := s.List(); st[0].LastStatus != "failed" || st[0].LastExecutedAt == nil || st[0].NextRunAt == nil {
		t.Errorf("status after the failure: %+v", st[0])
	}

	done := make(chan error, 1)
	go func() {
		_, err := s.Run(context.Background(), "slow")
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !s.List()[1].Running {
		if time.Now().After(deadline) {
			t.Fatal("the slow job never showed as running")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := s.Run(context.Background(), "slow"); !errors.Is(err, ErrRunning) {
		t.Errorf("a second run while one is in progress: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Errorf("the slow run: %v", err)
	}
	if _, err := s.Run(context.Background(), "nope"); !errors.Is(err, ErrUnknownJob) {
		t.Errorf("an unknown job: %v", err)
	}
}

// TestStopEndsWaits: Stop returns at once, though a job is waiting for
// its next time and another between two attempts.
func TestStopEndsWaits(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(500)
	}))
	defer srv.Close()
	s := New(srv.Client(), zap.NewNop())
	s.Set([]Job{job(t, "every", "* * * * * *", srv.URL, 100), job(t, "yearly", "@yearly", srv.URL, 1)})
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() == 0 { // "every" has begun its attempts
		if time.Now().After(deadline) {
			t.Fatal("no attempt within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	s.Stop()
	if took := time.Since(start); took > time.Second {
		t.Errorf("Stop took %s", took)
	}
}

// TestPauseResume: a paused job's schedule runs it no more (Run still
// does) and shows no next time; resumed, it runs on its schedule again;
// both are idempotent, keep across a Set of the same job, and refuse an
// unknown name.
func TestPauseResume(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1) }))
	defer srv.Close()
	s := New(srv.Client(), zap.NewNop())
	defer s.Stop()
	every := job(t, "every", "* * * * * *", srv.URL, 1)
	s.Set([]Job{every})
	waitCalls := func(n int32) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for calls.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d calls, want %d", calls.Load(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitCalls(1)
	for range 2 {
		st, err := s.Pause("every")
		if err != nil || !st.Paused || st.NextRunAt != nil {
			t.Fatalf("pause: %+v %v", st, err)
		}
	}
	s.Set([]Job{every})
	if !s.List()[0].Paused {
		t.Fatal("a Set of the same job resumed it")
	}
	n := calls.Load()
	// Due every second: a run in the next 2.2 s would be the schedule's.
	deadline := time.Now().Add(2200 * time.Millisecond)
	for time.Now().Before(deadline) {
		if calls.Load() > n {
			t.Fatal("a paused job ran on its schedule")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ok, err := s.Run(context.Background(), "every"); !ok || err != nil {
		t.Fatalf("run of a paused job: %v %v", ok, err)
	}
	st, err := s.Resume("every")
	if err != nil || st.Paused || st.NextRunAt == nil || !st.NextRunAt.After(time.Now()) {
		t.Fatalf("resume: %+v %v", st, err)
	}
	waitCalls(calls.Load() + 1)
	if _, err := s.Pause("nope"); !errors.Is(err, ErrUnknownJob) {
		t.Errorf("pause of an unknown job: %v", err)
	}
}

// TestStatusMasksTheCallbackPassword: the status (ctl scheduler, Watt's
// API) shows a callback URL's password masked, as ctl config does; the
// call itself sends it.
func TestStatusMasksTheCallbackPassword(t *testing.T) {
	var auth atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		auth.Store(u + ":" + p)
	}))
	defer srv.Close()
	s := New(srv.Client(), zap.NewNop())
	defer s.Stop()
	u := "http://cron:s3cret@" + srv.Listener.Addr().String() + "/cb"
	s.Set([]Job{job(t, "cb", "0 0 1 1 *", u, 1)})
	if st := s.List(); st[0].CallbackURL != "http://cron:[redacted]@"+srv.Listener.Addr().String()+"/cb" {
		t.Errorf("status shows %q", st[0].CallbackURL)
	}
	if ok, err := s.Run(context.Background(), "cb"); !ok || err != nil || auth.Load() != "cron:s3cret" {
		t.Errorf("run: %v %v, credentials %v", ok, err, auth.Load())
	}
}
