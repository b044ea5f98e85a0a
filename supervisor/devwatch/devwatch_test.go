package devwatch

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
	var mu sync.Mutex
	var seen []string
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := Watch(ctx, root, 50*time.Millisecond, func(p []string) {
		mu.Lock()
		seen = append(seen, p...)
		mu.Unlock()
	}, func(err error) { t.Errorf("warning: %v", err) }); err != nil {
		t.Fatal(err)
	}
	saw := func(name string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range seen {
			if p == name {
				return true
			}
		}
		return false
	}
	waitSeen := func(name string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !saw(name) {
			if time.Now().After(deadline) {
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("%s not reported; reported: %v", name, seen)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := os.Rename(filepath.Join(root, "lib"), filepath.Join(root, "lib2")); err != nil {
		t.Fatal(err)
	}
	waitSeen(filepath.Join(root, "lib2"))
	for _, f := range []string{"lib2/a.js", "lib2/sub/b.js"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		waitSeen(filepath.Join(root, f))
	}
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
	var mu sync.Mutex
	var seen []string
	var warnings []error
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := Watch(ctx, root, 50*time.Millisecond, func(p []string) {
		mu.Lock()
		seen = append(seen, p...)
		mu.Unlock()
	}, func(err error) {
		mu.Lock()
		warnings = append(warnings, err)
		mu.Unlock()
	})
	if err != nil {
		t.Fatalf("Watch failed instead of watching what it can: %v", err)
	}
	mu.Lock()
	if len(warnings) != 1 || !strings.Contains(warnings[0].Error(), "6 folders not watched") || !strings.Contains(warnings[0].Error(), "fs.inotify.max_user_watches") {
		t.Fatalf("warnings %v, want one naming 6 folders and the limit", warnings)
	}
	mu.Unlock()
	if err := os.WriteFile(filepath.Join(root, "app.js"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		ok := slices.Contains(seen, filepath.Join(root, "app.js"))
		mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a change in the watched folder was not reported")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A folder made later that cannot be watched either: one more warning.
	if err := os.Mkdir(filepath.Join(root, "later"), 0o755); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(warnings)
		mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("warnings %v, want a second one for the new folder", warnings)
		}
		time.Sleep(10 * time.Millisecond)
	}
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
	var mu sync.Mutex
	var seen []string
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := Watch(ctx, link, 50*time.Millisecond, func(p []string) {
		mu.Lock()
		seen = append(seen, p...)
		mu.Unlock()
	}, func(err error) { t.Errorf("warning: %v", err) }); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(link, "src/app.js"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an edit under a symlinked application folder was not reported")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
