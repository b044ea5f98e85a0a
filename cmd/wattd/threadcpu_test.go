package main_test

import (
	"fmt"
	"math"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestThreadCPUMetrics checks Watt's CPU figures of a Node worker, which
// wattd reads from /proc: a request that keeps the worker's event loop
// busy for a second shows in its main thread's CPU time and in its usage
// percentage between two scrapes.
func TestThreadCPUMetrics(t *testing.T) {
	integration(t)
	port, mport := freePort(t), freePort(t)
	dir := metricsProject(t, map[string]any{"hostname": "127.0.0.1", "port": mport},
		map[string]any{"id": "web", "path": fixture("apps/burn")})
	d := startWattd(t, dir, port, startOpts{})
	d.waitReady("web", 20*time.Second)
	endpoint := fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)
	// figures is web's worker 0's value of each family.
	figures := func() map[string]float64 {
		t.Helper()
		fams, err := scrape(endpoint, "", "")
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, name := range []string{"thread_cpu_user_system_seconds_total", "thread_cpu_system_seconds_total",
			"thread_cpu_seconds_total", "thread_cpu_percent_usage", "process_cpu_percent_usage", "process_cpu_seconds_total"} {
			v, ok := byLabels(fams[name], "applicationId", "workerId")["web/0"]
			if !ok {
				t.Fatalf("no %s for web/0 in the scrape", name)
			}
			out[name] = v
		}
		return out
	}
	waitFor(t, 20*time.Second, "web/0's heap figures", func() bool {
		fams, err := scrape(endpoint, "", "")
		return err == nil && fams["nodejs_heap_size_total_bytes"] != nil
	})
	before := figures()
	start := time.Now()
	// 500 ms of CPU time on the event loop, however long a loaded
	// machine makes that take.
	if code, _, err := get(fresh, fmt.Sprintf("http://127.0.0.1:%d/burn?cpums=500", port)); err != nil || code != http.StatusOK {
		t.Fatalf("/burn: %d %v", code, err)
	}
	after := figures()
	window := time.Since(start).Seconds()

	used := after["thread_cpu_seconds_total"] - before["thread_cpu_seconds_total"]
	if used < 0.45 || used > window+0.05 {
		t.Errorf("thread_cpu_seconds_total grew by %.2f s over a %.2f s window holding 0.5 s of CPU on the event loop", used, window)
	}
	// The percentage covers the time between the two scrapes: the window,
	// within the 10 ms ticks of /proc and the scrapes' own time.
	if p, want := after["thread_cpu_percent_usage"], 100*used/window; math.Abs(p-want) > 10 {
		t.Errorf("thread_cpu_percent_usage = %.1f, want about %.1f (%.2f s of CPU in %.2f s)", p, want, used, window)
	}
	// A quiet window next: its percentage is its own, near zero, not the
	// average since the worker started or since the busy loop.
	quietStart := time.Now()
	time.Sleep(700 * time.Millisecond) // the window measured; the figures say what happened in it
	quiet := figures()
	quietWindow := time.Since(quietStart).Seconds()
	quietUsed := quiet["thread_cpu_seconds_total"] - after["thread_cpu_seconds_total"]
	if p, want := quiet["thread_cpu_percent_usage"], 100*quietUsed/quietWindow; math.Abs(p-want) > 10 {
		t.Errorf("quiet window: thread_cpu_percent_usage = %.1f, want about %.1f (%.2f s of CPU in %.2f s)", p, want, quietUsed, quietWindow)
	}
	for _, f := range []map[string]float64{before, after, quiet} {
		if sum := f["thread_cpu_user_system_seconds_total"] + f["thread_cpu_system_seconds_total"]; math.Abs(sum-f["thread_cpu_seconds_total"]) > 1e-9 {
			t.Errorf("user %v + system %v != thread total %v", f["thread_cpu_user_system_seconds_total"], f["thread_cpu_system_seconds_total"], f["thread_cpu_seconds_total"])
		}
		// The process's time counts every thread's, the main one's too.
		if f["thread_cpu_seconds_total"] > f["process_cpu_seconds_total"] {
			t.Errorf("main thread %v s > process %v s", f["thread_cpu_seconds_total"], f["process_cpu_seconds_total"])
		}
		if h := f["process_cpu_percent_usage"]; h < 0 || h > 100 {
			t.Errorf("process_cpu_percent_usage = %v, want a percentage", h)
		}
	}
	// The host was at least as busy as the worker's thread.
	if h, least := after["process_cpu_percent_usage"], 0.8*100*used/window/float64(hostCPUs()); h < least {
		t.Errorf("process_cpu_percent_usage = %.1f, want at least %.1f (%.2f s of one thread's CPU in %.2f s on %d CPUs)", h, least, used, window, hostCPUs())
	}
}

// hostCPUs counts the host's CPUs as /proc/stat lists them (the figure
// process_cpu_percent_usage divides by), which may be more than this
// process may run on.
func hostCPUs() int {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 1
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if len(line) > 3 && strings.HasPrefix(line, "cpu") && line[3] >= '0' && line[3] <= '9' {
			n++
		}
	}
	return max(n, 1)
}
