package cgroups

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"
)

// ownCgroupV2 makes an empty cgroup in this machine's v2 hierarchy that
// offers the hugetlb controller (the only one on v2 here) and requires
// just that one, so the controller-enabling code runs for real. It puts
// the test process into the cgroup when self is set, as wattd sits in
// its delegated cgroup under systemd, and puts it back afterwards.
func ownCgroupV2(t *testing.T, self bool) (string, mount) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	mounts, _ := cgroupMounts()
	i := slices.IndexFunc(mounts, func(m mount) bool { return m.fstype == "cgroup2" && !m.ro })
	if i < 0 {
		t.Skip("no writable cgroup2 hierarchy")
	}
	mt := mounts[i]
	if c, _ := readFile(mt.point, "cgroup.controllers"); !slices.Contains(strings.Fields(c), "hugetlb") {
		t.Skip("the v2 hierarchy offers no hugetlb controller to drive the enabling code with")
	}
	saved := requiredV2
	requiredV2 = []string{"hugetlb"}
	t.Cleanup(func() { requiredV2 = saved })
	// As systemd does for a unit with Delegate=yes, the parent hands the
	// controller to the cgroup given to wattd.
	if c, _ := readFile(mt.point, "cgroup.subtree_control"); !strings.Contains(c, "hugetlb") {
		if err := writeFile(mt.point, "cgroup.subtree_control", "+hugetlb"); err != nil {
			t.Skipf("cannot enable hugetlb below %s: %v", mt.point, err)
		}
		t.Cleanup(func() { _ = writeFile(mt.point, "cgroup.subtree_control", "-hugetlb") })
	}
	own := filepath.Join(mt.point, fmt.Sprintf("wattd-own-%d", os.Getpid()))
	if err := os.Mkdir(own, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Back to where the test started, then the test cgroups go.
		_ = writeFile(mt.point, "cgroup.procs", strconv.Itoa(os.Getpid()))
		_, _ = removeTree(own, func(dir string) error { return killDir(V2, "", dir) })
	})
	if self {
		if err := writeFile(own, "cgroup.procs", strconv.Itoa(os.Getpid())); err != nil {
			t.Fatal(err)
		}
	}
	return own, mt
}

func TestV2RealMovesItselfIntoALeaf(t *testing.T) {
	own, _ := ownCgroupV2(t, true)
	m, err := Open(Options{Root: own, Name: testName(t), Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if m.Version() != V2 {
		t.Fatalf("%s: %s", m.Version(), m.Warning())
	}
	b, _ := os.ReadFile("/proc/self/cgroup")
	if !strings.Contains(string(b), "0::/"+filepath.Base(own)+"/supervisor\n") {
		t.Fatalf("wattd did not move into its leaf:\n%s", b)
	}
	for _, dir := range []string{own, m.Dirs()[""]} {
		if c, _ := readFile(dir, "cgroup.subtree_control"); c != "hugetlb" {
			t.Errorf("%s/cgroup.subtree_control = %q", dir, c)
		}
	}
	g, err := m.Worker("api", 0, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := readFile(g.Dirs()[""], "cgroup.controllers"); c != "hugetlb" {
		t.Errorf("the controller did not reach the worker's group: %q", c)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// A second Open in the same process finds the same delegated cgroup.
	if err := unix.Setxattr(own, "trusted.delegate", []byte("1"), 0); err != nil {
		t.Skipf("cannot mark the cgroup delegated here: %v", err)
	}
	m2 := &Manager{name: "again", log: zaptest.NewLogger(t), groups: map[*Group]struct{}{}}
	mounts, _ := cgroupMounts()
	mt, _ := mountOf(mounts, own)
	if err := m2.openV2(mt, ""); err != nil {
		t.Fatal(err)
	}
	if got := m2.Dirs()[""]; got != filepath.Join(own, "again") {
		t.Fatalf("default root in a delegated cgroup: %s, want %s", got, filepath.Join(own, "again"))
	}
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestV2RealOccupiedCgroupFallsBack(t *testing.T) {
	own, _ := ownCgroupV2(t, false)
	other := exec.Command("/usr/bin/sleep", "1000")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Process.Kill(); _ = other.Wait() })
	if err := writeFile(own, "cgroup.procs", strconv.Itoa(other.Process.Pid)); err != nil {
		t.Fatal(err)
	}
	m, err := Open(Options{Root: own, Name: testName(t), Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("warning: %s", m.Warning())
	if m.Version() != Fallback || !strings.Contains(m.Warning(), "holds other processes") {
		t.Fatalf("%s: %q", m.Version(), m.Warning())
	}
	if err := syscall.Kill(other.Process.Pid, 0); err != nil {
		t.Fatal("the other process was touched")
	}
}
