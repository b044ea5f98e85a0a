package cgroups

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sys/unix"
)

// unitV1 lays out what systemd makes for a v1 unit: a cgroup at the same
// path in every hierarchy wattd uses and in the name=systemd one, marked
// delegated on the latter when delegate is set. It returns the unit's
// path and points selfCgroupPath at a file saying wattd is in it.
func unitV1(t *testing.T, delegate bool) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	mounts, _ := cgroupMounts()
	unit := fmt.Sprintf("/wattd-unit-%d-%t.service", os.Getpid(), delegate)
	var self strings.Builder
	hier := 1
	for _, ctrl := range append(append(append([]string{}, requiredV1...), optionalV1...), "name=systemd") {
		mt, ok := mount{}, false
		for _, m := range mounts {
			if m.fstype == "cgroup" && m.root == "/" && (m.has(ctrl) || "name="+m.name == ctrl) {
				mt, ok = m, true
			}
		}
		if !ok && slices.Contains(optionalV1, ctrl) {
			continue
		}
		if !ok {
			t.Skipf("no v1 %s hierarchy mounted at its top", ctrl)
		}
		dir := path.Join(mt.point, unit)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = syscall.Rmdir(dir) })
		if ctrl == "name=systemd" && delegate {
			if err := unix.Setxattr(dir, "trusted.delegate", []byte("1"), 0); err != nil {
				t.Skipf("cannot mark %s delegated here: %v", dir, err)
			}
		}
		fmt.Fprintf(&self, "%d:%s:%s\n", hier, ctrl, unit)
		hier++
	}
	fmt.Fprintf(&self, "0::/\n")
	file := filepath.Join(t.TempDir(), "cgroup")
	if err := os.WriteFile(file, []byte(self.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	saved := selfCgroupPath
	selfCgroupPath = file
	t.Cleanup(func() { selfCgroupPath = saved })
	return unit
}

// TestV1DelegatedUnitHoldsTheWorkers: under systemd on v1 with
// Delegate=yes, the workers' groups are below the unit's own cgroups, so
// the unit's limits bound them too; here the unit's memory limit kills a
// worker that has no limit of its own.
func TestV1DelegatedUnitHoldsTheWorkers(t *testing.T) {
	unit := unitV1(t, true)
	m := openReal(t, V1, "", testName(t))
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	for _, ctrl := range requiredV1 {
		want := path.Join("/sys/fs/cgroup", ctrl, unit, m.name)
		if got := m.Dirs()[ctrl]; got != want {
			t.Errorf("%s group: %s, want %s", ctrl, got, want)
		}
	}
	memUnit := path.Join("/sys/fs/cgroup/memory", unit)
	if v, _ := readFile(memUnit, "memory.use_hierarchy"); v != "1" {
		t.Skipf("memory.use_hierarchy is %q here: a parent's limit does not bind its children", v)
	}
	if err := writeFile(memUnit, "memory.limit_in_bytes", strconv.Itoa(64<<20)); err != nil {
		t.Fatal(err)
	}
	g, err := m.Worker("hog", 0, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, g, "alloc", nil)
	select {
	case <-w.done:
		ws, ok := w.cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("worker ended with %v, want killed by SIGKILL", w.cmd.ProcessState)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("a worker allocating without bound in a unit limited to 64 MiB is still running after 60s")
	}
	// The kill is the group's, under the unit's limit, which wattd names
	// (the worker has none of its own).
	if n, err := g.OOMKills(); err != nil || n == 0 {
		t.Errorf("OOMKills = %d, %v; want the kill counted in the worker's group", n, err)
	}
	if got := g.InheritedMemoryLimit(); got != 64<<20 {
		t.Errorf("InheritedMemoryLimit = %d, want the unit's %d", got, 64<<20)
	}
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
}

// TestV1UndelegatedUnitKeepsTheDefaultRoot: without the mark, systemd
// manages the unit's cgroups itself, so wattd stays at its own root, and
// says that the unit's memory limit does not bind the workers.
func TestV1UndelegatedUnitKeepsTheDefaultRoot(t *testing.T) {
	unit := unitV1(t, false)
	if err := writeFile(path.Join("/sys/fs/cgroup/memory", unit), "memory.limit_in_bytes", strconv.Itoa(512<<20)); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.WarnLevel)
	m, err := Open(Options{Name: testName(t), Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	if m.Version() != V1 {
		t.Skipf("v1 not usable here: %s", m.Warning())
	}
	if got, want := m.Dirs()["memory"], path.Join("/sys/fs/cgroup/memory/wattd", m.name); got != want {
		t.Errorf("memory group: %s, want %s", got, want)
	}
	warned := logs.FilterMessageSnippet("does not bind its workers").All()
	if len(warned) != 1 {
		t.Fatalf("want one warning about the unit's limit, got %v", logs.All())
	}
	f := warned[0].ContextMap()
	if want := path.Join("/sys/fs/cgroup/memory", unit) + " has memory.limit_in_bytes 512 MiB"; f["limit"] != want || f["workers"] != "/sys/fs/cgroup/memory/wattd" {
		t.Errorf("warning fields %v, want limit %q", f, want)
	}
}

func TestUnboundLimit(t *testing.T) {
	top := t.TempDir()
	own := filepath.Join(top, "system.slice", "app.service")
	if err := os.MkdirAll(own, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		slice, unit, root, want string
	}{
		{"max", "1073741824", filepath.Join(top, "wattd"), own + " has memory.max 1024 MiB"},
		{"536870912", "max", filepath.Join(top, "wattd"), filepath.Dir(own) + " has memory.max 512 MiB"},
		{"max", "max", filepath.Join(top, "wattd"), ""},
		// The root below the limited cgroup: the limit binds.
		{"max", "1073741824", filepath.Join(own, "wattd"), ""},
		{"536870912", "max", filepath.Join(top, "system.slice", "wattd"), ""},
	} {
		_ = os.WriteFile(filepath.Join(filepath.Dir(own), "memory.max"), []byte(c.slice+"\n"), 0o644)
		_ = os.WriteFile(filepath.Join(own, "memory.max"), []byte(c.unit+"\n"), 0o644)
		if got := unboundLimit("memory.max", own, c.root, top); got != c.want {
			t.Errorf("slice %s, unit %s, root %s: %q, want %q", c.slice, c.unit, c.root, got, c.want)
		}
	}
}

// TestV2InheritedMemoryLimit: on v2 the lowest memory.max above the
// group counts (read here from a laid-out tree: this machine's v2
// hierarchy has no memory controller).
func TestV2InheritedMemoryLimit(t *testing.T) {
	top := t.TempDir()
	unit := filepath.Join(top, "system.slice", "web.service")
	dir := filepath.Join(unit, "proj", "web.0.1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for d, v := range map[string]string{
		filepath.Join(top, "system.slice"): "max",
		unit:                               "536870912",
		filepath.Join(unit, "proj"):        "max",
		dir:                                "max",
	} {
		if err := os.WriteFile(filepath.Join(d, "memory.max"), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	g := &Group{m: &Manager{version: V2}, dirs: map[string]string{"": dir}}
	if got := g.InheritedMemoryLimit(); got != 512<<20 {
		t.Errorf("InheritedMemoryLimit = %d, want %d", got, 512<<20)
	}
	if got := (&Group{m: &Manager{version: Fallback}}).InheritedMemoryLimit(); got != 0 {
		t.Errorf("fallback: %d", got)
	}
}
