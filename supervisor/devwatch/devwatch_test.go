package devwatch

import (
	"context"
	"os"
	"path/filepath"
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
	}); err != nil {
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
	}); err != nil {
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
