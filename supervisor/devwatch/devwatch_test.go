package devwatch

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDebouncedChangesAndSkippedFolders(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"src", "node_modules/x"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var calls [][]string
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := Watch(ctx, root, 100*time.Millisecond, func(p []string) {
		mu.Lock()
		calls = append(calls, p)
		mu.Unlock()
	}, func(err error) { t.Errorf("warning: %v", err) }); err != nil {
		t.Fatal(err)
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(calls) }

	// A change in node_modules is not the developer's.
	os.WriteFile(filepath.Join(root, "node_modules/x/index.js"), []byte("x"), 0o644)
	// A burst of edits gives one call.
	for i := range 5 {
		os.WriteFile(filepath.Join(root, "src/app.js"), []byte{byte('a' + i)}, 0o644)
	}
	deadline := time.Now().Add(5 * time.Second)
	for count() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if count() != 1 {
		t.Fatalf("%d calls, want 1", count())
	}
	mu.Lock()
	for _, p := range calls[0] {
		if filepath.Base(filepath.Dir(p)) == "x" {
			t.Fatalf("node_modules change reported: %v", calls[0])
		}
	}
	mu.Unlock()

	// A new folder is watched too.
	os.Mkdir(filepath.Join(root, "lib"), 0o755)
	deadline = time.Now().Add(5 * time.Second)
	for count() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	os.WriteFile(filepath.Join(root, "lib/new.js"), []byte("n"), 0o644)
	deadline = time.Now().Add(5 * time.Second)
	for count() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if count() < 3 {
		t.Fatalf("a file in a new folder was not seen (%d calls)", count())
	}
}

func TestIgnored(t *testing.T) {
	for p, want := range map[string]bool{
		"/r/src/a.js":            false,
		"/r/node_modules/a.js":   true,
		"/r/.git/HEAD":           true,
		"/r/src/.a.js.swp":       true,
		"/r/src/a.js~":           true,
		"/r/packages/dist/x.js":  true,
		"/r/src/components/b.js": false,
		// What editors and desktops write without a save.
		"/r/src/.a.js.swo":        true,
		"/r/src/.a.js.swx":        true,
		"/r/src/4913":             true,
		"/r/src/#a.js#":           true,
		"/r/src/.#a.js":           true,
		"/r/src/.DS_Store":        true,
		"/r/src/a.js___jb_tmp___": true,
		"/r/src/a.js___jb_old___": true,
		"/r/src/.env":             false,
		"/r/src/app.swp.js":       false,
		"/r/src/#":                false,
		"/r/src/release.sw":       false,
	} {
		if got := ignored("/r", p); got != want {
			t.Errorf("ignored(%s) = %v", p, got)
		}
	}
}

// TestSkippedFolderMadeAtRoot: a build making its output folder (the go
// capability's .wattd/, dist/) in the watched folder is no edit, while a
// hidden file there (.env) still is.
func TestSkippedFolderMadeAtRoot(t *testing.T) {
	root := t.TempDir()
	var mu sync.Mutex
	var calls [][]string
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := Watch(ctx, root, 50*time.Millisecond, func(p []string) {
		mu.Lock()
		calls = append(calls, p)
		mu.Unlock()
	}, func(err error) { t.Errorf("warning: %v", err) }); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{".wattd/dev", "dist", "node_modules/x"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.RemoveAll(filepath.Join(root, "dist"))
	// The file written last: the only change to report.
	if err := os.WriteFile(filepath.Join(root, ".env"), []byte("A=1"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(calls)
		mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 1 || len(calls[0]) != 1 || filepath.Base(calls[0][0]) != ".env" {
		t.Fatalf("calls %v, want one with .env alone", calls)
	}
}

// TestRenamedFolderStaysWatched: after `mv lib lib2`, an edit of a file in
// lib2 is still a change.
func TestRenamedFolderStaysWatched(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "lib/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := watchRecorded(t, root)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "lib"), filepath.Join(root, "lib2")); err != nil {
		t.Fatal(err)
	}
	r.await(t, "lib2 reported", saw(filepath.Join(root, "lib2")))
	for _, f := range []string{"lib2/a.js", "lib2/sub/b.js"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		r.await(t, f+" reported", saw(filepath.Join(root, f)))
	}
	r.mu.Lock()
	if len(r.warnings) > 0 {
		t.Errorf("warnings: %v", r.warnings)
	}
	r.mu.Unlock()
}

// TestWatchLimitReached: with fewer inotify watches allowed than the tree
// has folders, Watch watches what it can, says which limit to raise, and a
// change in a watched folder still counts. The limit is lowered in a user
// namespace of its own (the test runs itself again under unshare), so no
// other program of the machine's user is short of watches.
func TestWatchLimitReached(t *testing.T) {
	if os.Getenv("DEVWATCH_LIMIT_CHILD") == "" {
		if _, err := exec.LookPath("unshare"); err != nil {
			t.Skip("unshare not found")
		}
		cmd := exec.Command("unshare", "-U", "-r", os.Args[0], "-test.run=^TestWatchLimitReached$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "DEVWATCH_LIMIT_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil && strings.Contains(string(out), "unshare:") {
			t.Skipf("no user namespace: %s", out)
		}
		if err == nil && strings.Contains(string(out), "--- SKIP") {
			t.Skipf("%s", out)
		}
		if err != nil || !strings.Contains(string(out), "--- PASS") {
			t.Fatalf("%v\n%s", err, out)
		}
		t.Logf("%s", out)
		return
	}
	if err := os.WriteFile("/proc/sys/user/max_inotify_watches", []byte("5"), 0o644); err != nil {
		t.Skipf("cannot lower the watch limit: %v", err)
	}
	root := t.TempDir()
	for i := range 10 {
		if err := os.Mkdir(filepath.Join(root, fmt.Sprintf("d%d", i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r, err := watchRecorded(t, root)
	if err != nil {
		t.Fatalf("Watch failed instead of watching what it can: %v", err)
	}
	r.mu.Lock()
	if len(r.warnings) != 1 || !strings.Contains(r.warnings[0].Error(), "6 folders not watched") || !strings.Contains(r.warnings[0].Error(), "fs.inotify.max_user_watches") {
		t.Fatalf("warnings %v, want one naming 6 folders and the limit", r.warnings)
	}
	r.mu.Unlock()
	if err := os.WriteFile(filepath.Join(root, "app.js"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.await(t, "a change in the watched folder reported", saw(filepath.Join(root, "app.js")))
	// A folder made later that cannot be watched either: one more warning.
	if err := os.Mkdir(filepath.Join(root, "later"), 0o755); err != nil {
		t.Fatal(err)
	}
	r.await(t, "a second warning, for the new folder", func(r *recorder) bool { return len(r.warnings) == 2 })
}

// TestSymlinkedRoot: an application folder given as a symbolic link is
// watched where the link points.
func TestSymlinkedRoot(t *testing.T) {
	real := filepath.Join(t.TempDir(), "real")
	if err := os.MkdirAll(filepath.Join(real, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "app")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	r, err := watchRecorded(t, link)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(link, "src/app.js"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.await(t, "an edit under a symlinked application folder reported", func(r *recorder) bool { return len(r.seen) > 0 })
	r.mu.Lock()
	if len(r.warnings) > 0 {
		t.Errorf("warnings: %v", r.warnings)
	}
	r.mu.Unlock()
}

// recorder runs Watch on root and keeps what it reports: the changed paths
// and the warnings.
type recorder struct {
	mu       sync.Mutex
	seen     []string
	warnings []error
}

// watchRecorded starts Watch on root with a 50 ms debounce until the test
// ends, and returns its recorder, or Watch's error.
func watchRecorded(t *testing.T, root string) (*recorder, error) {
	t.Helper()
	r := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	err := Watch(ctx, root, 50*time.Millisecond, func(p []string) {
		r.mu.Lock()
		r.seen = append(r.seen, p...)
		r.mu.Unlock()
	}, func(err error) {
		r.mu.Lock()
		r.warnings = append(r.warnings, err)
		r.mu.Unlock()
	})
	return r, err
}

// await polls cond, under the recorder's lock, for 5 s, and fails the
// test with what was recorded if it never holds.
func (r *recorder) await(t *testing.T, what string, cond func(r *recorder) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		ok := cond(r)
		seen, warnings := slices.Clone(r.seen), slices.Clone(r.warnings)
		r.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so after 5 s; reported %v, warnings %v", what, seen, warnings)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// saw is an await condition: path was reported.
func saw(path string) func(*recorder) bool {
	return func(r *recorder) bool { return slices.Contains(r.seen, path) }
}

// TestQueueOverflow: when the kernel's queue of events overflows (here
// while the change callback holds the loop, as a restart does), the lost
// changes are reported as root itself, and a folder made while events were
// being lost is watched afterwards.
func TestQueueOverflow(t *testing.T) {
	raw, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events")
	if err != nil {
		t.Skip(err)
	}
	max, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || max > 1<<17 {
		t.Skipf("max_queued_events %q: too many events to flood it here", raw)
	}
	root := t.TempDir()
	hold := make(chan struct{})
	var mu sync.Mutex
	var seen []string
	calls := 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err = Watch(ctx, root, 50*time.Millisecond, func(p []string) {
		mu.Lock()
		seen = append(seen, p...)
		calls++
		first := calls == 1
		mu.Unlock()
		if first {
			<-hold // a restart in progress: the loop reads no events
		}
	}, func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	waitSeen := func(what string, path string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			ok := slices.Contains(seen, path)
			mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s not reported within 10 s", what, path)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	first := filepath.Join(root, "index.js")
	if err := os.WriteFile(first, []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitSeen("the first change", first)
	// Two files written in turns: events that follow each other differ, so
	// the kernel queues every one, more than the queue holds.
	for i := range max + 1000 {
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("flood%d", i%2)), []byte{byte(i)}, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	lib := filepath.Join(root, "lib")
	if err := os.Mkdir(lib, 0o755); err != nil {
		t.Fatal(err)
	}
	close(hold)
	waitSeen("the lost changes", root)
	later := filepath.Join(lib, "new.js")
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Written again until seen: the loop may still be reading the
		// flood's events when the first write comes.
		if err := os.WriteFile(later, []byte("n"), 0o644); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		ok := slices.Contains(seen, later)
		mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a file in the folder made while events were lost was never reported: the folder is not watched")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestWatchFiles: only the named files count, in a folder reached through
// a link too; one replaced by a rename (an editor's save) or created
// counts, and a burst gives one call naming each file once.
func TestWatchFiles(t *testing.T) {
	root := t.TempDir()
	real := filepath.Join(root, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(root, "link", "watt.json")
	dotenv := filepath.Join(root, "link", ".env") // not there yet
	if err := os.WriteFile(conf, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	calls := make(chan []string, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := WatchFiles(ctx, []string{conf, dotenv}, 100*time.Millisecond, func(p []string) { calls <- p }); err != nil {
		t.Fatal(err)
	}
	next := func(what string) []string {
		t.Helper()
		select {
		case p := <-calls:
			slices.Sort(p)
			return p
		case <-time.After(5 * time.Second):
			t.Fatalf("no call for %s", what)
			return nil
		}
	}
	// Another file of the folder: nothing. Then the named file, replaced
	// by a rename, and the .env created, in one burst.
	os.WriteFile(filepath.Join(real, "other.js"), []byte("x"), 0o644)
	tmp := filepath.Join(real, "watt.json.tmp")
	os.WriteFile(tmp, []byte(`{"a": 1}`), 0o644)
	if err := os.Rename(tmp, filepath.Join(real, "watt.json")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(real, ".env"), []byte("X=1\n"), 0o644)
	if got, want := next("the burst"), []string{dotenv, conf}; !slices.Equal(got, want) {
		t.Fatalf("changed %v, want %v", got, want)
	}
	os.WriteFile(filepath.Join(real, "other.js"), []byte("y"), 0o644)
	os.WriteFile(filepath.Join(real, ".env"), []byte("X=2\n"), 0o644)
	if got := next("the second edit"); !slices.Equal(got, []string{dotenv}) {
		t.Fatalf("changed %v, want only %s", got, dotenv)
	}
	if err := WatchFiles(ctx, []string{filepath.Join(root, "gone", "watt.json")}, time.Millisecond, func([]string) {}); err == nil {
		t.Error("a folder that is not there: no error")
	}
}
