package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor"
	"github.com/wattd/wattd/supervisor/admin"
)

// underLoad runs keep-alive and new-connection GETs against d's public
// port while fn runs, and fails the test if any request failed or was
// refused.
func underLoad(t *testing.T, d *daemon, what string, fn func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var kept, fresh *loadResult
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); kept = keepAliveLoad(ctx, d.addr(), 12) }()
	go func() { defer wg.Done(); fresh = load(ctx, d.url("/"), 3) }()
	fn()
	// A little more load after the change: requests queued on a socket
	// that went away would show now.
	time.Sleep(300 * time.Millisecond)
	cancel()
	wg.Wait()
	t.Logf("%s under load: kept-alive ok %d failed %d refused %d; new connections ok %d failed %d refused %d",
		what, kept.ok, kept.failed, kept.refused, fresh.ok, fresh.failed, fresh.refused)
	if kept.failed+kept.refused+fresh.failed+fresh.refused != 0 || kept.ok == 0 || fresh.ok == 0 {
		t.Fatalf("%s lost requests: kept-alive %+v, new connections %+v", what, kept, fresh)
	}
}

func pids(a supervisor.AppStatus) []int {
	var out []int
	for _, w := range a.Workers {
		out = append(out, w.PID)
	}
	return out
}

func findApp(apps []supervisor.AppStatus, id string) (supervisor.AppStatus, bool) {
	for _, a := range apps {
		if a.ID == id {
			return a, true
		}
	}
	return supervisor.AppStatus{}, false
}

// TestScaleUnderKeepAliveLoad: ctl scale adds workers that are ready when
// it returns, and removes workers that have drained and exited, without a
// failed request, the kept workers untouched.
func TestScaleUnderKeepAliveLoad(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/burn"), "workers": 2}},
	})
	d := startWattd(t, dir, port, startOpts{})
	waitHTTP(t, d.url("/"), 20*time.Second)
	before := d.waitReady("web", 10*time.Second)

	underLoad(t, d, "scale 2 -> 4", func() {
		if out, err := d.ctl("scale", "web", "4"); err != nil {
			t.Fatalf("ctl scale web 4: %v\n%s", err, out)
		}
	})
	up := d.app("web")
	if len(up.Workers) != 4 {
		t.Fatalf("after scale 4: %d workers", len(up.Workers))
	}
	for i, w := range up.Workers {
		if w.State != "ready" {
			t.Fatalf("worker %d %s after ctl scale returned", i, w.State)
		}
	}
	if !slices.Equal(pids(up)[:2], pids(before)) {
		t.Fatalf("scaling up replaced the existing workers: before %v after %v", pids(before), pids(up))
	}
	if up.Scaling == nil || up.Scaling.Last == nil || up.Scaling.Last.From != 2 || up.Scaling.Last.To != 4 {
		t.Fatalf("ctl ps --json scaling = %+v, want the last decision 2 -> 4", up.Scaling)
	}

	underLoad(t, d, "scale 4 -> 1", func() {
		if out, err := d.ctl("scale", "web", "1"); err != nil {
			t.Fatalf("ctl scale web 1: %v\n%s", err, out)
		}
	})
	down := d.app("web")
	if len(down.Workers) != 1 || down.Workers[0].PID != up.Workers[0].PID {
		t.Fatalf("after scale 1: %+v, want worker 0 (pid %d) alone", pids(down), up.Workers[0].PID)
	}
	// The application's totals keep what the removed slots counted.
	startsOf := func(a supervisor.AppStatus) int {
		n := 0
		for _, w := range a.Workers {
			n += w.Starts
		}
		if a.Former != nil {
			n += a.Former.Starts
		}
		return n
	}
	if startsOf(down) < startsOf(up) {
		t.Fatalf("the application's worker starts went from %d to %d as it scaled down", startsOf(up), startsOf(down))
	}
	for _, pid := range pids(up)[1:] {
		if alive(pid) {
			t.Fatalf("removed worker %d still running after ctl scale returned", pid)
		}
	}

	underLoad(t, d, "scale 1 -> 3", func() {
		if out, err := d.ctl("scale", "web", "3"); err != nil {
			t.Fatalf("ctl scale web 3: %v\n%s", err, out)
		}
	})
	if n := len(d.waitReady("web", 10*time.Second).Workers); n != 3 {
		t.Fatalf("after scale 3: %d workers", n)
	}

	// Wrong counts are refused before anything changes.
	if out, err := d.ctl("scale", "web", "0"); err == nil || !strings.Contains(out, "N must be a worker count") {
		t.Fatalf("ctl scale web 0: err %v, output %s", err, out)
	}
	if out, err := d.ctl("scale", "nope", "2"); err == nil || !strings.Contains(out, `unknown app "nope"`) {
		t.Fatalf("ctl scale nope 2: err %v, output %s", err, out)
	}
}

// reloadConfig is the project of the reload tests: web (the entrypoint),
// db and, as given, api; version is web's $VERSION.
func reloadConfig(version string, webWorkers int, extra ...map[string]any) map[string]any {
	apps := []any{
		map[string]any{"id": "web", "path": fixture("apps/burn"), "workers": webWorkers, "env": map[string]any{"VERSION": version}},
		map[string]any{"id": "db", "path": fixture("apps/plain")},
	}
	for _, e := range extra {
		apps = append(apps, e)
	}
	return map[string]any{
		"entrypoint":   "web",
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": apps,
	}
}

// TestReloadUnderKeepAliveLoad: ctl reload starts added apps, drains
// removed ones, rolls changed ones and scales those whose worker count
// alone changed, with no failed request; an unchanged app keeps its
// workers.
func TestReloadUnderKeepAliveLoad(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, reloadConfig("1", 2, map[string]any{"id": "api", "path": fixture("apps/plain")}))
	d := startWattd(t, dir, port, startOpts{})
	waitHTTP(t, d.url("/"), 20*time.Second)
	web := d.waitReady("web", 10*time.Second)
	db := d.waitReady("db", 10*time.Second)
	api := d.waitReady("api", 10*time.Second)

	// web changed (its env), api removed, cache added after db, db as is.
	writeJSON(t, filepath.Join(dir, "watt.json"), reloadConfig("2", 2,
		map[string]any{"id": "cache", "path": fixture("apps/plain"), "dependencies": []any{"db"}}))
	var res supervisor.ReloadResult
	underLoad(t, d, "reload", func() {
		res = reloadJSON(t, d)
	})
	if !slices.Equal(res.Added, []string{"cache"}) || !slices.Equal(res.Removed, []string{"api"}) ||
		!slices.Equal(res.Changed, []string{"web"}) || !slices.Equal(res.Unchanged, []string{"db"}) || len(res.Scaled) != 0 {
		t.Fatalf("reload result %+v", res)
	}
	apps := d.ps()
	if _, ok := findApp(apps, "api"); ok {
		t.Fatal("api still listed after it was removed")
	}
	for _, pid := range pids(api) {
		if alive(pid) {
			t.Fatalf("worker %d of the removed app still running", pid)
		}
	}
	if got, _ := findApp(apps, "db"); !slices.Equal(pids(got), pids(db)) {
		t.Fatalf("unchanged db was touched: pids %v, were %v", pids(got), pids(db))
	}
	newWeb, _ := findApp(apps, "web")
	for i, w := range newWeb.Workers {
		if w.PID == web.Workers[i].PID || w.State != "ready" {
			t.Fatalf("web worker %d not rolled: before %+v after %+v", i, web.Workers[i], w)
		}
	}
	d.waitReady("cache", 10*time.Second)
	for range 6 {
		if _, body, err := get(fresh, d.url("/")); err != nil || !strings.Contains(body, `"version":"2"`) {
			t.Fatalf("after reload web answers %q (%v), want version 2", body, err)
		}
	}
	out, err := d.ctl("inject", "cache", "/")
	if err != nil || !strings.Contains(out, `"app":"cache"`) {
		t.Fatalf("the added app does not answer on the mesh: %v\n%s", err, out)
	}

	// Only web's worker count: a scale, no roll.
	rolled := d.app("web")
	writeJSON(t, filepath.Join(dir, "watt.json"), reloadConfig("2", 3,
		map[string]any{"id": "cache", "path": fixture("apps/plain"), "dependencies": []any{"db"}}))
	underLoad(t, d, "reload scaling web", func() {
		res = reloadJSON(t, d)
	})
	if len(res.Scaled) != 1 || res.Scaled[0] != (supervisor.ScaleChange{App: "web", From: 2, To: 3}) || len(res.Changed) != 0 {
		t.Fatalf("reload result %+v, want web scaled 2 -> 3 and nothing rolled", res)
	}
	scaled := d.waitReady("web", 10*time.Second)
	if len(scaled.Workers) != 3 || !slices.Equal(pids(scaled)[:2], pids(rolled)) {
		t.Fatalf("web after the scale: %v, was %v", pids(scaled), pids(rolled))
	}
	if slices.Contains(res.Unchanged, "web") {
		t.Errorf("reload result %+v lists web as scaled and unchanged", res)
	}

	// Back to 2 in the file: compared with the last reload's file, that is
	// a scale down.
	writeJSON(t, filepath.Join(dir, "watt.json"), reloadConfig("2", 2,
		map[string]any{"id": "cache", "path": fixture("apps/plain"), "dependencies": []any{"db"}}))
	res = reloadJSON(t, d)
	if len(res.Scaled) != 1 || res.Scaled[0] != (supervisor.ScaleChange{App: "web", From: 3, To: 2}) || len(res.Changed) != 0 {
		t.Fatalf("reload result %+v, want web scaled 3 -> 2 and nothing rolled", res)
	}
	waitFor(t, 10*time.Second, "web to have 2 workers", func() bool { return len(d.app("web").Workers) == 2 })
}

// reloadJSON runs `ctl reload --json`, which must succeed, and returns
// what it printed.
func reloadJSON(t *testing.T, d *daemon) supervisor.ReloadResult {
	t.Helper()
	out, err := d.ctl("reload", "--json")
	if err != nil {
		t.Fatalf("ctl reload: %v\n%s", err, out)
	}
	var res supervisor.ReloadResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("ctl reload --json: %v\n%s", err, out)
	}
	// Every list is a list, empty or not (jq '.added[]' must work).
	var raw map[string]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"added", "removed", "changed", "scaled", "standby", "unchanged"} {
		if _, ok := raw[k].([]any); !ok {
			t.Errorf("ctl reload --json: %q is %v, want a list:\n%s", k, raw[k], out)
		}
	}
	return res
}

// TestReloadRefusesABrokenConfig: a configuration that does not load, or
// that changes what needs a restart, is refused with every reason (ctl
// reload exits 1 and prints them, wattd logs them; SIGHUP logs them), and
// the running applications keep serving untouched.
func TestReloadRefusesABrokenConfig(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, reloadConfig("1", 2))
	d := startWattd(t, dir, port, startOpts{})
	waitHTTP(t, d.url("/"), 20*time.Second)
	before := d.waitReady("web", 10*time.Second)

	broken := reloadConfig("2", 2)
	broken["workerz"] = 3
	broken["applications"].([]any)[1].(map[string]any)["workers"] = 0
	writeJSON(t, filepath.Join(dir, "watt.json"), broken)
	underLoad(t, d, "refused reload", func() {
		out, err := d.ctl("reload")
		if err == nil {
			t.Fatalf("ctl reload of a broken config succeeded:\n%s", out)
		}
		for _, want := range []string{"does not load", "workerz", "/applications/1/workers", "keep serving"} {
			if !strings.Contains(out, want) {
				t.Fatalf("ctl reload output lacks %q:\n%s", want, out)
			}
		}
	})
	d.waitOutput("reload refused: the configuration does not load", 10*time.Second)

	// The same on SIGHUP: logged, nothing changes.
	d.signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "the SIGHUP reload to be refused", func() bool {
		return strings.Count(d.out.String(), "reload refused: the configuration does not load") >= 2
	})

	// A valid file that changes the public port is refused as well.
	moved := reloadConfig("2", 2)
	newPort := freePort(t)
	moved["server"] = map[string]any{"hostname": "127.0.0.1", "port": newPort}
	writeJSON(t, filepath.Join(dir, "watt.json"), moved)
	// Named as a load error names a value: file, line, JSON path.
	raw, err := os.ReadFile(filepath.Join(dir, "watt.json"))
	if err != nil {
		t.Fatal(err)
	}
	line := slices.IndexFunc(strings.Split(string(raw), "\n"), func(l string) bool { return strings.Contains(l, fmt.Sprintf(`"port": %d`, newPort)) }) + 1
	out, err := d.ctl("reload")
	if want := fmt.Sprintf("%s:%d: /server/port: changed", filepath.Join(dir, "watt.json"), line); err == nil || line == 0 || !strings.Contains(out, want) || !strings.Contains(out, "restart wattd") {
		t.Fatalf("ctl reload changing server.port: err %v, want %q in:\n%s", err, want, out)
	}
	after := d.app("web")
	if !slices.Equal(pids(after), pids(before)) {
		t.Fatalf("refused reloads touched web: pids %v, were %v", pids(after), pids(before))
	}
	if _, body, err := get(fresh, d.url("/")); err != nil || !strings.Contains(body, `"version":"1"`) {
		t.Fatalf("after refused reloads web answers %q (%v), want the old version 1", body, err)
	}

	// Fixed, a SIGHUP applies it.
	writeJSON(t, filepath.Join(dir, "watt.json"), reloadConfig("2", 2))
	d.signal(syscall.SIGHUP)
	waitFor(t, 20*time.Second, "web to run version 2 after SIGHUP", func() bool {
		_, body, err := get(fresh, d.url("/"))
		return err == nil && strings.Contains(body, `"version":"2"`)
	})
	d.waitOutput("reload done", 20*time.Second)
}

// TestReloadReadsTheFileTheStartFound: a reload reads the file the start
// found in the directory, not whichever of Watt's names comes first by
// then: with watt.json gone, a stale platformatic.json beside it is not
// applied, and the reload is refused naming the missing file.
func TestReloadReadsTheFileTheStartFound(t *testing.T) {
	integration(t)
	dir := project(t, reloadConfig("1", 1))
	d := startWattd(t, dir, freePort(t), startOpts{})
	d.waitReady("web", 20*time.Second)
	stale := reloadConfig("stale", 1)
	stale["applications"] = []any{map[string]any{"id": "web", "path": fixture("apps/plain")}}
	writeJSON(t, filepath.Join(dir, "platformatic.json"), stale)
	if err := os.Rename(filepath.Join(dir, "watt.json"), filepath.Join(dir, "watt.json.bak")); err != nil {
		t.Fatal(err)
	}
	out, err := d.ctl("reload")
	if err == nil || !strings.Contains(out, filepath.Join(dir, "watt.json")) || !strings.Contains(out, "does not exist") {
		t.Fatalf("reload with watt.json gone: %v\n%s", err, out)
	}
	if apps := d.ps(); len(apps) != 2 {
		t.Fatalf("the refused reload changed the applications: %+v", apps)
	}
}

// TestReloadOfAFileNowADirectory: a reload after watt.json was replaced
// by a directory says so; it gave the start's advice, to pass the
// directory as the project directory, which a running wattd cannot take.
func TestReloadOfAFileNowADirectory(t *testing.T) {
	integration(t)
	dir := project(t, reloadConfig("1", 1))
	d := startWattd(t, dir, freePort(t), startOpts{})
	d.waitReady("web", 20*time.Second)
	file := filepath.Join(dir, "watt.json")
	if err := os.Rename(file, file+".bak"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(file, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := d.ctl("reload")
	if err == nil || !strings.Contains(out, file+" is now a directory") || strings.Contains(out, "project directory instead") {
		t.Fatalf("reload with watt.json a directory: %v\n%s", err, out)
	}
}

// TestSIGHUPDuringAReload: a SIGHUP that comes while a reload runs is not
// lost (it used to be refused, "a reload or scaling is in progress", and
// the newest file was never applied): one more reload follows and applies
// the file as it is then.
func TestSIGHUPDuringAReload(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, reloadConfig("1", 2))
	slow := func(version string) map[string]any {
		cfg := reloadConfig(version, 2)
		web := cfg["applications"].([]any)[0].(map[string]any)
		web["env"] = map[string]any{"VERSION": version, "START_DELAY_MS": "1500"}
		return cfg
	}
	writeJSON(t, filepath.Join(dir, "watt.json"), slow("1"))
	d := startWattd(t, dir, port, startOpts{})
	d.waitReady("web", 30*time.Second)

	writeJSON(t, filepath.Join(dir, "watt.json"), slow("2"))
	d.signal(syscall.SIGHUP)
	d.waitOutput("reloading the configuration", 10*time.Second)
	// The roll of web takes 2 x 1.5 s: this one comes in the middle.
	time.Sleep(300 * time.Millisecond)
	writeJSON(t, filepath.Join(dir, "watt.json"), slow("3"))
	d.signal(syscall.SIGHUP)
	waitFor(t, 30*time.Second, "both workers of web to run version 3", func() bool {
		seen := map[string]bool{}
		for range 10 {
			_, body, err := get(fresh, d.url("/"))
			if err != nil {
				return false
			}
			var r struct{ Version string }
			json.Unmarshal([]byte(body), &r)
			seen[r.Version] = true
		}
		return len(seen) == 1 && seen["3"]
	})
	out := d.out.String()
	if strings.Contains(out, "reload refused") || strings.Contains(out, "reload applied with errors") || strings.Contains(out, "SIGHUP: no reload") {
		t.Errorf("a SIGHUP reload failed:\n%s", out)
	}
	// The second SIGHUP came while the first reload ran.
	second := strings.Index(out, "SIGHUP: reloading the configuration")
	if second >= 0 {
		if i := strings.Index(out[second+1:], "SIGHUP: reloading the configuration"); i >= 0 {
			second += 1 + i
		} else {
			second = -1
		}
	}
	if done := strings.Index(out, "reload done"); second < 0 || done < second {
		t.Fatalf("the second SIGHUP (at %d) did not come before the first reload was done (at %d): the test did not overlap them", second, done)
	}
}

// TestSIGHUPsDuringAScaleMakeOneReload: SIGHUPs that come while a scale
// runs make one reload once it is done, not one for the first SIGHUP and
// another for those after it (the first one's turn took the pending
// request before it could begin).
func TestSIGHUPsDuringAScaleMakeOneReload(t *testing.T) {
	integration(t)
	cfg := reloadConfig("1", 1)
	web := cfg["applications"].([]any)[0].(map[string]any)
	web["env"] = map[string]any{"VERSION": "1", "START_DELAY_MS": "2000"}
	dir := project(t, cfg)
	d := startWattd(t, dir, freePort(t), startOpts{})
	d.waitReady("web", 30*time.Second)
	scaled := make(chan error, 1)
	go func() {
		out, err := d.ctl("scale", "web", "2")
		if err != nil {
			err = fmt.Errorf("%w: %s", err, out)
		}
		scaled <- err
	}()
	d.waitOutput(`"msg":"scaling"`, 10*time.Second)
	for range 5 {
		d.signal(syscall.SIGHUP)
		time.Sleep(50 * time.Millisecond) // SIGHUPs apart, as a person or a script sends them
	}
	if err := <-scaled; err != nil {
		t.Fatalf("ctl scale: %v", err)
	}
	d.waitOutput(`"msg":"reload done"`, 20*time.Second)
	// A second reload would begin within busyRetry (100 ms) of the first
	// one's end; give it ten times that.
	time.Sleep(time.Second)
	if n := strings.Count(d.out.String(), `"msg":"reloading the configuration"`); n != 1 {
		t.Errorf("%d reloads for SIGHUPs sent during one scale, want 1", n)
	}
}

// TestDynamicScaling: with workers.dynamic, an application whose workers'
// event loops are busy gets more workers, and loses them again when idle;
// each decision is logged with its reason and shown by ctl ps --json.
func TestDynamicScaling(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"server":  map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"workers": map[string]any{"dynamic": true, "minimum": 1, "maximum": 3, "cooldown": 1000, "gracePeriod": 2000},
		// Short windows so the test sees decisions in seconds.
		"verticalScaler": map[string]any{"timeWindowSec": 2, "scaleDownTimeWindowSec": 3, "scaleIntervalSec": 1},
		"applications":   []any{map[string]any{"id": "web", "path": fixture("apps/burn")}},
	})
	d := startWattd(t, dir, port, startOpts{env: []string{"WATTD_STATS_INTERVAL_MS=200"}})
	waitHTTP(t, d.url("/"), 20*time.Second)
	// static defaults to the minimum. (Whether a worker busy starting
	// counts is the grace period's business; the test only waits.)
	d.waitOutput(`"msg":"starting","apps":1,"workers":1`, 5*time.Second)
	d.waitReady("web", 10*time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				_, _, _ = get(fresh, d.url("/burn?ms=40"))
			}
		})
	}
	var up supervisor.AppStatus
	waitFor(t, 30*time.Second, "web to scale up under CPU load", func() bool {
		up = d.app("web")
		return len(up.Workers) >= 2
	})
	cancel()
	wg.Wait()
	if up.Scaling == nil || !up.Scaling.Dynamic || up.Scaling.Last == nil || !strings.Contains(up.Scaling.Last.Reason, "above scaleUpELU") {
		t.Fatalf("ctl ps --json scaling after the scale up: %+v", up.Scaling)
	}
	d.waitOutput(`"msg":"scaling decision"`, 5*time.Second)
	t.Logf("scaled up to %d: %+v", len(up.Workers), *up.Scaling.Last)

	var down supervisor.AppStatus
	waitFor(t, 40*time.Second, "web to scale back down when idle", func() bool {
		down = d.app("web")
		return len(down.Workers) == 1
	})
	if down.Scaling == nil || down.Scaling.Last == nil || !strings.Contains(down.Scaling.Last.Reason, "below scaleDownELU") {
		t.Fatalf("ctl ps --json scaling after the scale down: %+v", down.Scaling)
	}
	t.Logf("scaled down: %+v", *down.Scaling.Last)
}

// TestScaleMeshAppUnderLoad: scaling an application that others call on
// the mesh loses no call: a slot being removed leaves the mesh table
// before its worker drains.
func TestScaleMeshAppUnderLoad(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"entrypoint": "web",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{
			map[string]any{"id": "web", "path": fixture("apps/caller"), "workers": 2},
			map[string]any{"id": "api", "path": fixture("apps/plain"), "workers": 1},
		},
	})
	d := startWattd(t, dir, port, startOpts{})
	waitHTTP(t, d.url("/"), 20*time.Second)
	d.waitReady("web", 10*time.Second)
	d.waitReady("api", 10*time.Second)

	calls := func(fn func()) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		var mu sync.Mutex
		ok, failed := 0, 0
		var errs []string
		var wg sync.WaitGroup
		for _, path := range []string{"/get", "/fetch", "/get", "/fetch"} {
			wg.Go(func() {
				c := &http.Client{Timeout: 10 * time.Second}
				for ctx.Err() == nil {
					code, body, err := get(c, d.url(path+"?app=api&path=/"))
					mu.Lock()
					if err == nil && code == 200 && strings.Contains(body, `"status":200`) {
						ok++
					} else {
						failed++
						if len(errs) < 5 {
							errs = append(errs, fmt.Sprintf("%s: %d %q %v", path, code, body, err))
						}
					}
					mu.Unlock()
				}
			})
		}
		fn()
		time.Sleep(300 * time.Millisecond)
		cancel()
		wg.Wait()
		t.Logf("mesh calls: ok %d failed %d", ok, failed)
		if failed != 0 || ok == 0 {
			t.Fatalf("mesh calls lost while scaling api: ok %d failed %d: %v", ok, failed, errs)
		}
	}
	calls(func() {
		if out, err := d.ctl("scale", "api", "3"); err != nil {
			t.Fatalf("ctl scale api 3: %v\n%s", err, out)
		}
	})
	calls(func() {
		if out, err := d.ctl("scale", "api", "1"); err != nil {
			t.Fatalf("ctl scale api 1: %v\n%s", err, out)
		}
	})
	if n := len(d.app("api").Workers); n != 1 {
		t.Fatalf("api has %d workers after scaling to 1", n)
	}
}

// TestStopDuringAReload: a stop that comes while a reload rolls an app is
// not a failed reload: one info line says the stop cut it short, no error
// is logged and wattd exits 0.
func TestStopDuringAReload(t *testing.T) {
	integration(t)
	port := freePort(t)
	slow := func(version string) map[string]any {
		cfg := reloadConfig(version, 2)
		web := cfg["applications"].([]any)[0].(map[string]any)
		web["env"] = map[string]any{"VERSION": version, "START_DELAY_MS": "1500"}
		return cfg
	}
	dir := project(t, slow("1"))
	d := startWattd(t, dir, port, startOpts{})
	d.waitReady("web", 30*time.Second)

	writeJSON(t, filepath.Join(dir, "watt.json"), slow("2"))
	d.signal(syscall.SIGHUP)
	d.waitOutput("rolling restart onto it", 10*time.Second)
	d.signal(syscall.SIGTERM)
	if code := d.wait(30 * time.Second); code != 0 {
		t.Fatalf("wattd exited %d, want 0:\n%s", code, d.out.String())
	}
	out := d.out.String()
	if !strings.Contains(out, "reload interrupted by the stop") {
		t.Errorf("no line says the stop interrupted the reload:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `"level":50`) {
			t.Errorf("an error was logged: %s", line)
		}
	}
}

// TestCtlTimeoutSaysSo: a change that outlasts ctl's --timeout is named
// as such, and goes on in the runtime.
func TestCtlTimeoutSaysSo(t *testing.T) {
	integration(t)
	port := freePort(t)
	cfg := reloadConfig("1", 2)
	web := cfg["applications"].([]any)[0].(map[string]any)
	web["env"] = map[string]any{"VERSION": "1", "START_DELAY_MS": "1500"}
	d := startWattd(t, project(t, cfg), port, startOpts{})
	d.waitReady("web", 30*time.Second)
	out, err := d.ctl("restart", "web", "--timeout", "100ms")
	if err == nil || !strings.Contains(out, "no answer within 100ms (--timeout)") {
		t.Fatalf("ctl restart --timeout 100ms: err %v, output %q", err, out)
	}
	// It goes on to its end in the runtime.
	d.waitOutput("rolling restart done", 20*time.Second)
}

// TestReloadForgetsTheLogLinesOfARemovedApp: the recent lines `ctl logs`
// keeps for an application (up to 1000 lines, 1 MiB) go with it when a
// reload removes it. They used to stay for good, unreachable by `ctl logs
// APP` (an unknown app), so a long-running wattd whose reloads bring
// applications of new ids kept up to 1 MiB more with each: measured, 30
// reloads that each replaced an app printing 1.1 MB at start took wattd's
// Go heap from 5.1 MB to 41.5 MB and its RSS from 27 MB to 77 MB.
func TestReloadForgetsTheLogLinesOfARemovedApp(t *testing.T) {
	integration(t)
	logsApp := map[string]any{"id": "noisy", "path": fixture("apps/logs")}
	dir := project(t, reloadConfig("1", 1, logsApp))
	d := startWattd(t, dir, freePort(t), startOpts{})
	d.waitReady("web", 20*time.Second)
	d.waitReady("noisy", 20*time.Second)
	recent := func() string {
		t.Helper()
		out, err := d.ctl("logs", "--json", "-n", "100000")
		if err != nil {
			t.Fatalf("ctl logs: %v\n%s", err, out)
		}
		return out
	}
	// The fixture writes its lines once it listens.
	waitFor(t, 10*time.Second, "the noisy app's lines in ctl logs", func() bool {
		return strings.Contains(recent(), "multi-line message")
	})
	writeJSON(t, filepath.Join(dir, "watt.json"), reloadConfig("1", 1))
	if res := reloadJSON(t, d); !slices.Equal(res.Removed, []string{"noisy"}) {
		t.Fatalf("reload removed %v, want [noisy]", res.Removed)
	}
	if out := recent(); strings.Contains(out, "multi-line message") {
		t.Fatalf("ctl logs still has the lines of the removed app:\n%s", out)
	}
	// The runtime's own lines are still there, the reload's among them.
	if out := recent(); !strings.Contains(out, `"msg":"reload plan"`) {
		t.Fatalf("ctl logs lost the runtime's lines:\n%s", out)
	}
}

// rollBackApp answers with its worker id, $VERSION and the path its
// globalThis.platformatic.applicationConfig gives (read from the app info
// file wattd writes), and exits at start in the worker $CRASH_WORKER.
const rollBackApp = `if (process.env.CRASH_WORKER === process.env.WATTD_WORKER_ID) process.exit(5)
require('node:http').createServer((req, res) => {
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ worker: process.env.WATTD_WORKER_ID, version: process.env.VERSION || '', path: globalThis.platformatic?.applicationConfig?.path }))
}).listen(3000)
`

// TestReloadThatGoesBackKeepsThePreviousConfiguration: a reload whose
// changed app fails on its second worker rolls its first worker back, and
// that worker runs the previous configuration whole: its environment, and
// the app info it reads at start (the failed configuration's path used
// to stay there); ctl config shows the configuration that runs, not the
// one that failed; the error says what the rest of the reload applied.
func TestReloadThatGoesBackKeepsThePreviousConfiguration(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	for _, sub := range []string{"v1", "v2"} {
		writeFiles(t, filepath.Join(dir, sub), map[string]string{
			"package.json": `{"name":"web","private":true,"main":"index.js"}`,
			"index.js":     rollBackApp,
		})
	}
	conf := func(path string, env map[string]any, extra ...any) map[string]any {
		apps := append([]any{map[string]any{"id": "web", "path": filepath.Join(dir, path), "workers": 2, "env": env}}, extra...)
		return map[string]any{
			"entrypoint":   "web",
			"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
			"applications": apps,
		}
	}
	writeJSON(t, filepath.Join(dir, "watt.json"), conf("v1", map[string]any{"VERSION": "1"}))
	d := startWattd(t, dir, freePort(t), startOpts{})
	waitHTTP(t, d.url("/"), 20*time.Second)
	d.waitReady("web", 10*time.Second)

	// Worker 0 starts on the new configuration, worker 1 exits: worker 0
	// goes back. api, added by the same reload, stays.
	writeJSON(t, filepath.Join(dir, "watt.json"), conf("v2", map[string]any{"VERSION": "2", "CRASH_WORKER": "1"},
		map[string]any{"id": "api", "path": fixture("apps/plain")}))
	out, err := d.ctl("reload")
	if err == nil {
		t.Fatalf("ctl reload of an app whose worker 1 exits succeeded:\n%s", out)
	}
	for _, want := range []string{`app "web" worker 1 did not start`, "added api", "back on the previous configuration: web"} {
		if !strings.Contains(out, want) {
			t.Fatalf("ctl reload output lacks %q:\n%s", want, out)
		}
	}
	d.waitReady("web", 10*time.Second)
	d.waitReady("api", 10*time.Second)

	// Every worker of web runs the previous configuration.
	seen := map[string]bool{}
	waitFor(t, 20*time.Second, "an answer from both workers of web", func() bool {
		_, body, err := get(fresh, d.url("/"))
		if err != nil {
			return false
		}
		var got struct{ Worker, Version, Path string }
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("web answered %q: %v", body, err)
		}
		if got.Version != "1" || got.Path != filepath.Join(dir, "v1") {
			t.Fatalf("after the reload went back, web worker %s runs version %q with applicationConfig.path %q, want version 1 and %s",
				got.Worker, got.Version, got.Path, filepath.Join(dir, "v1"))
		}
		seen[got.Worker] = true
		return len(seen) == 2
	})

	// ctl config: the configuration that runs.
	out, err = d.ctl("config", "--json")
	if err != nil {
		t.Fatalf("ctl config: %v\n%s", err, out)
	}
	var cfg struct {
		Applications []struct {
			ID, Path string
			Env      map[string]string
		}
	}
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("ctl config --json: %v\n%s", err, out)
	}
	ids := []string{}
	for _, a := range cfg.Applications {
		ids = append(ids, a.ID)
		if a.ID == "web" && (a.Path != filepath.Join(dir, "v1") || a.Env["VERSION"] != "1" || a.Env["CRASH_WORKER"] != "") {
			t.Fatalf("ctl config shows web with path %s and env %v, the configuration that failed, not the one that runs", a.Path, a.Env)
		}
	}
	if !slices.Equal(ids, []string{"web", "api"}) {
		t.Fatalf("ctl config shows applications %v, want web and api", ids)
	}

	// The same file again tries web again: it is still a change.
	out, _ = d.ctl("reload")
	if !strings.Contains(out, "back on the previous configuration: web") {
		t.Fatalf("a second reload of the same file did not try web again:\n%s", out)
	}
}

// TestReloadOfAFailedApp: a reload that changes an application which had
// failed (every start attempt used up) does not go back when the new
// configuration fails too: there is no worker to keep and the previous
// configuration is the one that failed. The application stays on the new
// one, tried by its restart policy, and fails again on it, not on the old.
func TestReloadOfAFailedApp(t *testing.T) {
	integration(t)
	conf := func(env map[string]any) map[string]any {
		return map[string]any{
			"entrypoint": "web",
			"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
			"restart":    map[string]any{"initialDelay": 10, "maxDelay": 20, "maxRestarts": 1},
			"applications": []any{
				map[string]any{"id": "web", "path": fixture("apps/plain")},
				map[string]any{"id": "db", "path": fixture("faults/crash-start"), "env": env},
			},
		}
	}
	dir := project(t, conf(map[string]any{"ATTEMPT": "old"}))
	d := startWattd(t, dir, freePort(t), startOpts{})
	d.waitReady("web", 20*time.Second)
	failed := func(what string) {
		t.Helper()
		waitFor(t, 20*time.Second, what, func() bool {
			a := d.app("db")
			return len(a.Workers) == 1 && a.Workers[0].State == supervisor.StateFailed.String()
		})
	}
	failed("db to give up")
	writeJSON(t, filepath.Join(dir, "watt.json"), conf(map[string]any{"ATTEMPT": "new"}))
	out, err := d.ctl("reload")
	if err != nil || strings.Contains(out, "back on the previous configuration") {
		t.Fatalf("ctl reload (%v):\n%s", err, out)
	}
	d.waitOutput("the application had failed, so it stays on the new one", 10*time.Second)
	failed("db to give up on the new configuration")
	out, err = d.ctl("config", "--json")
	if err != nil || !strings.Contains(out, `"ATTEMPT": "new"`) && !strings.Contains(out, `"ATTEMPT":"new"`) {
		t.Fatalf("ctl config (%v) does not show the new configuration:\n%s", err, out)
	}
}

// TestReloadShowsTheNewConfigurationsWarnings: a reload that applies a
// configuration with warnings (an unset placeholder, taken as empty)
// shows them to whoever reloaded, not only in wattd's log.
func TestReloadShowsTheNewConfigurationsWarnings(t *testing.T) {
	integration(t)
	port := freePort(t)
	cfg := map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": port},
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/plain")}},
	}
	dir := project(t, cfg)
	d := startWattd(t, dir, port, startOpts{})
	d.waitReady("web", 30*time.Second)
	cfg["applications"].([]any)[0].(map[string]any)["env"] = map[string]any{"GREETING": "{WATTD_TEST_UNSET_GREETING}"}
	writeJSON(t, filepath.Join(dir, "watt.json"), cfg)
	out, err := d.ctl("reload")
	if err != nil || !strings.Contains(out, "warning: ") || !strings.Contains(out, "WATTD_TEST_UNSET_GREETING") || !strings.Contains(out, "web") {
		t.Errorf("ctl reload: %v; want the table and a warning naming the unset variable\n%s", err, out)
	}
	out, err = d.ctl("reload", "--json")
	var res supervisor.ReloadResult
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || len(res.Warnings) == 0 {
		t.Errorf("ctl reload --json: %v, %+v\n%s", err, res, out)
	}
}

// TestRestartOfAnAppThatAReloadRemoves: a reload that removes an app
// while `ctl restart` of it waits for a replacement cuts the restart short;
// the restart's error says that the app was removed, not that the runtime
// is stopping (it is not), and the API answers 404, as for an unknown app.
func TestRestartOfAnAppThatAReloadRemoves(t *testing.T) {
	integration(t)
	slow := map[string]any{"id": "slow", "path": fixture("faults/slow-start"), "env": map[string]any{"SLOW_START_MS": "3000"}}
	dir := project(t, reloadConfig("1", 1, slow))
	d := startWattd(t, dir, freePort(t), startOpts{})
	d.waitReady("slow", 30*time.Second)
	d.waitReady("web", 30*time.Second)
	type result struct {
		out string
		err error
	}
	ctlDone := make(chan result, 1)
	go func() {
		out, err := d.ctl("restart", "slow")
		ctlDone <- result{out, err}
	}()
	apiDone := make(chan error, 1)
	go func() {
		cl := admin.NewClient(d.adminSocket())
		defer cl.Close()
		_, err := cl.Restart(context.Background(), "slow")
		apiDone <- err
	}()
	waitFor(t, 10*time.Second, "both restarts to be asked for", func() bool {
		return strings.Count(d.out.String(), `"name":"slow","msg":"rolling restart requested`) == 2
	})
	writeJSON(t, filepath.Join(dir, "watt.json"), reloadConfig("1", 1))
	if res := reloadJSON(t, d); !slices.Equal(res.Removed, []string{"slow"}) {
		t.Fatalf("reload removed %v, want [slow]", res.Removed)
	}
	var r result
	select {
	case r = <-ctlDone:
	case <-time.After(30 * time.Second):
		t.Fatal("ctl restart did not return")
	}
	if r.err == nil || !strings.Contains(r.out, `app "slow" was removed`) || strings.Contains(r.out, "stopping") {
		t.Errorf("ctl restart of an app a reload removed: %v\n%s", r.err, r.out)
	}
	var err error
	select {
	case err = <-apiDone:
	case <-time.After(30 * time.Second):
		t.Fatal("the API's restart did not return")
	}
	var apiErr *admin.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
		t.Errorf("the API's restart of an app a reload removed: %v, want a 404", err)
	}
}

// TestChangesDuringTheFirstStart: while the entrypoint waits for the other
// applications' first workers, and an application for its dependency, a
// reload or a scale takes away what they wait for. The entrypoint then
// starts (it waited for ever on the slots taken away), a reload that also
// changes the waiting applications returns (it held the change lock for
// ever, refusing every later reload and scale), and an application whose
// dependency the reload removed starts on its new configuration.
func TestChangesDuringTheFirstStart(t *testing.T) {
	integration(t)
	slow := func(workers int) map[string]any {
		return map[string]any{"id": "slow", "path": fixture("faults/slow-start"), "workers": workers,
			"env": map[string]any{"SLOW_START_MS": "4000"}}
	}
	waitStarting := func(d *daemon) {
		waitFor(t, 10*time.Second, "slow's workers to be starting", func() bool {
			out, err := d.ctl("ps", "--json")
			var apps []supervisor.AppStatus
			if err != nil || json.Unmarshal([]byte(out), &apps) != nil {
				return false // not answering yet
			}
			for _, a := range apps {
				if a.ID == "slow" && len(a.Workers) > 0 && a.Workers[0].PID > 0 {
					return true
				}
			}
			return false
		})
	}
	checkWeb := func(d *daemon, version string) {
		t.Helper()
		d.waitReady("web", 15*time.Second)
		if _, body, err := get(fresh, d.url("/")); err != nil || !strings.Contains(body, `"version":"`+version+`"`) {
			t.Errorf("GET /: %v %s, want version %s", err, body, version)
		}
	}
	t.Run("reload removes the app waited for and changes the entrypoint", func(t *testing.T) {
		dir := project(t, reloadConfig("1", 1, slow(2)))
		d := startWattd(t, dir, freePort(t), startOpts{})
		waitStarting(d)
		writeJSON(t, filepath.Join(dir, "watt.json"), reloadConfig("2", 1))
		out, err := d.ctl("reload", "--timeout", "20s")
		if err != nil || !strings.Contains(out, "slow") {
			t.Fatalf("ctl reload: %v\n%s", err, out)
		}
		checkWeb(d, "2")
		// The change lock was let go.
		if out, err := d.ctl("scale", "web", "2"); err != nil {
			t.Errorf("ctl scale after the reload: %v\n%s", err, out)
		}
	})
	t.Run("scale down of the app waited for", func(t *testing.T) {
		dir := project(t, reloadConfig("1", 1, slow(2)))
		d := startWattd(t, dir, freePort(t), startOpts{})
		waitStarting(d)
		if out, err := d.ctl("scale", "slow", "1", "--timeout", "20s"); err != nil {
			t.Fatalf("ctl scale: %v\n%s", err, out)
		}
		checkWeb(d, "1")
	})
	t.Run("reload removes a dependency", func(t *testing.T) {
		dependant := func(deps ...string) map[string]any {
			return map[string]any{"id": "dep", "path": fixture("apps/plain"), "dependencies": append([]string{}, deps...)}
		}
		dir := project(t, reloadConfig("1", 1, slow(1), dependant("slow")))
		d := startWattd(t, dir, freePort(t), startOpts{})
		waitStarting(d)
		writeJSON(t, filepath.Join(dir, "watt.json"), reloadConfig("2", 1, dependant()))
		if out, err := d.ctl("reload", "--timeout", "20s"); err != nil {
			t.Fatalf("ctl reload: %v\n%s", err, out)
		}
		d.waitReady("dep", 15*time.Second)
		checkWeb(d, "2")
	})
}

// TestDeployOfANewEntry: a deploy that changes the entry in package.json
// (its main) without a word in watt.json is taken by a reload, which rolls
// the application, and by ctl restart; an entry that is not there is
// refused before any worker stops. Both used to run the old entry (and
// the restart, with the old file gone, failed the worker it replaced).
func TestDeployOfANewEntry(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	server := func(version string) string {
		return "require('node:http').createServer((req, res) => res.end('" + version + "')).listen(3000)\n"
	}
	writeFiles(t, dir, map[string]string{
		"web/package.json": `{"name": "web", "main": "v1.js"}`,
		"web/v1.js":        server("v1"),
		"web/v2.js":        server("v2"),
		"web/v3.js":        server("v3"),
	})
	writeJSON(t, filepath.Join(dir, "watt.json"), map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{map[string]any{"id": "web", "path": "web", "workers": 2}},
	})
	d := startWattd(t, dir, freePort(t), startOpts{})
	d.waitReady("web", 30*time.Second)
	serves := func(want string) {
		t.Helper()
		for i := 0; i < 6; i++ { // new connections, so both workers answer
			if code, body, err := get(fresh, d.url("/")); err != nil || code != 200 || body != want {
				t.Fatalf("GET /: %d %q %v, want %q", code, body, err, want)
			}
		}
	}
	serves("v1")
	main := func(entry string) {
		writeFiles(t, dir, map[string]string{"web/package.json": `{"name": "web", "main": "` + entry + `"}`})
	}

	main("v2.js")
	if res := reloadJSON(t, d); !slices.Equal(res.Changed, []string{"web"}) {
		t.Fatalf("reload after main changed: %+v, want web changed", res)
	}
	serves("v2")

	main("v3.js")
	if out, err := d.ctl("restart", "web"); err != nil {
		t.Fatalf("ctl restart: %v\n%s", err, out)
	}
	serves("v3")

	before := pids(d.app("web"))
	main("gone.js")
	out, err := d.ctl("restart", "web")
	if err == nil || !strings.Contains(out, "restart refused; the workers keep running") || !strings.Contains(out, "gone.js") {
		t.Errorf("ctl restart with a missing entry: %v\n%s", err, out)
	}
	if after := pids(d.app("web")); !slices.Equal(after, before) {
		t.Errorf("workers %v became %v", before, after)
	}
	serves("v3")
}
