package admin

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor"
)

func TestRenderPS(t *testing.T) {
	apps := []supervisor.AppStatus{
		{ID: "web", Entrypoint: true, State: "running", Workers: []supervisor.WorkerStatus{
			{Index: 0, PID: 4242, State: "ready", Uptime: 3.7, RSS: 45193625, Memory: 50331648, MemoryLimit: 100663296,
				Leaving: []supervisor.LeavingWorker{{PID: 4100, State: "draining", Uptime: 600, RSS: 44040192}}},
			{Index: 1, PID: 4250, State: "ready", Restarts: 2, LastExit: "oom (memory limit 96.0 MiB)", Uptime: 130, RSS: 41943040, Memory: 45193625},
		}},
		{ID: "api", State: "failed", Reason: "crashed 5 times in 60s", Workers: []supervisor.WorkerStatus{
			{Index: 0, State: "failed", Restarts: 5, LastExit: "signal: killed"},
			{Index: 1, Restarts: 5, LastExit: "exit status 2"},
		}},
		{ID: "docs", State: "failed", Reason: "entrypoint\tnot found\n"},
		{ID: "jobs", State: "running", Workers: []supervisor.WorkerStatus{
			{Index: 0, PID: 77, State: "starting", Uptime: 3720, RSS: 900},
		}, Standby: 2, Standbys: []supervisor.StandbyStatus{
			{PID: 78, State: "standby", Uptime: 61, RSS: 41943040, Memory: 10 << 20, MemoryLimit: 96 << 20},
			{PID: 79, State: "starting", Uptime: 0.2},
		}},
		{ID: "ui", State: "starting", Workers: []supervisor.WorkerStatus{
			{Index: 0, State: "waiting", WaitingFor: "api, db"},
		}},
	}
	want := strings.Join([]string{
		"APP   WORKER   PID   STATE     RESTARTS  LAST EXIT                    UPTIME  RSS       MEMORY",
		"web*  0        4242  ready     0         -                            3s      43.1 MiB  48.0 MiB / 96.0 MiB",
		"web*  0        4100  draining  -         -                            10m0s   42.0 MiB  -",
		"web*  1        4250  ready     2         oom (memory limit 96.0 MiB)  2m10s   40.0 MiB  43.1 MiB",
		"api   0        -     failed    5         signal: killed               -       -         -  (crashed 5 times in 60s)",
		"api   1        -     failed    5         exit status 2                -       -         -",
		"docs  -        -     failed    -         -                            -       -         -  (entrypoint not found)",
		"jobs  0        77    starting  0         -                            1h2m    900 B     -",
		"jobs  standby  78    standby   -         -                            1m1s    40.0 MiB  10.0 MiB / 96.0 MiB",
		"jobs  standby  79    starting  -         -                            0s      -         -",
		"ui    0        -     waiting   0         -                            -       -         -  (waiting for api, db)",
		"",
	}, "\n")
	wantPS(t, apps, want)
}

// An application none of whose workers serves says so, and a worker in
// back-off shows the time to its next start.
func TestRenderPSDown(t *testing.T) {
	apps := []supervisor.AppStatus{
		{ID: "web", Entrypoint: true, State: "down", Workers: []supervisor.WorkerStatus{
			{Index: 0, State: "backoff", Restarts: 3, LastExit: "exit status 1", RetryIn: 3.94},
			{Index: 1, State: "starting", PID: 4242, Restarts: 3, LastExit: "exit status 1", Uptime: 0.2},
		}},
	}
	want := strings.Join([]string{
		"APP   WORKER  PID   STATE           RESTARTS  LAST EXIT      UPTIME  RSS  MEMORY",
		"web*  0       -     backoff (3.9s)  3         exit status 1  -       -    -  (down: no worker serves)",
		"web*  1       4242  starting        3         exit status 1  0s      -    -",
		"",
	}, "\n")
	wantPS(t, apps, want)
}

// wantPS checks what RenderPS prints for apps.
func wantPS(t *testing.T, apps []supervisor.AppStatus, want string) {
	t.Helper()
	var b strings.Builder
	RenderPS(&b, apps)
	if got := b.String(); got != want {
		t.Errorf("RenderPS:\n%s\nwant:\n%s", got, want)
	}
}

func TestRenderPSEmpty(t *testing.T) {
	var b strings.Builder
	RenderPS(&b, nil)
	if got, want := b.String(), "APP  WORKER  PID  STATE  RESTARTS  LAST EXIT  UPTIME  RSS  MEMORY\n"; got != want {
		t.Errorf("RenderPS(nil) = %q, want %q", got, want)
	}
}

func TestRenderStatus(t *testing.T) {
	s := &supervisor.RuntimeStatus{
		PID: 4242, Version: "0.3.0", ProjectDir: "/srv/shop", ConfigFile: "/srv/shop/watt.json",
		Entrypoint: "web", URL: "http://127.0.0.1:3042", State: "running",
		StartedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Uptime: 3*86400 + 4*3600 + 300,
		Apps: 4, Workers: 5, Ready: 3, FailedApps: []string{"api", "docs"},
	}
	want := strings.Join([]string{
		"State:      running",
		"PID:        4242",
		"Version:    0.3.0",
		"Project:    /srv/shop",
		"Config:     /srv/shop/watt.json",
		"Entrypoint: web",
		"URL:        http://127.0.0.1:3042",
		"Started:    2025-01-02T03:04:05Z (up 3d4h)",
		"Apps:       4 (failed: api, docs)",
		"Workers:    3/5 ready",
		"",
	}, "\n")
	var b strings.Builder
	RenderStatus(&b, s)
	if got := b.String(); got != want {
		t.Errorf("RenderStatus:\n%s\nwant:\n%s", got, want)
	}

	b.Reset()
	RenderStatus(&b, &supervisor.RuntimeStatus{State: "starting"})
	want = strings.Join([]string{
		"State:      starting",
		"PID:        -",
		"Version:    -",
		"Project:    -",
		"Config:     -",
		"Entrypoint: -",
		"URL:        -",
		"Started:    -",
		"Apps:       0",
		"Workers:    0/0 ready",
		"",
	}, "\n")
	if got := b.String(); got != want {
		t.Errorf("RenderStatus(empty):\n%s\nwant:\n%s", got, want)
	}
}

func TestFormatUptime(t *testing.T) {
	for in, want := range map[float64]string{
		0:                  "0s",
		0.9:                "0s",
		3:                  "3s",
		59.99:              "59s",
		60:                 "1m0s",
		130:                "2m10s",
		3599:               "59m59s",
		3600:               "1h0m",
		3720:               "1h2m",
		86399:              "23h59m",
		86400:              "1d0h",
		3*86400 + 4*3600:   "3d4h",
		400 * 86400:        "400d0h",
		-1:                 "-",
		math.NaN():         "-",
		math.Inf(1):        "-",
		3*86400 + 4*3600.5: "3d4h",
	} {
		if got := FormatUptime(in); got != want {
			t.Errorf("FormatUptime(%v) = %q, want %q", in, got, want)
		}
	}
}
