package cgroups

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestMountinfo(t *testing.T) {
	table := `24 29 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 24 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
33 30 0:29 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
36 30 0:32 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
37 30 0:33 /docker/abc /sys/fs/cgroup/pids ro,nosuid - cgroup cgroup rw,pids
38 30 0:34 / /mnt/with\040space rw - cgroup cgroup rw,name=systemd,xattr
`
	p := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(p, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	saved := mountinfoPath
	mountinfoPath = p
	defer func() { mountinfoPath = saved }()
	got, err := cgroupMounts()
	if err != nil {
		t.Fatal(err)
	}
	want := []mount{
		{root: "/", point: "/sys/fs/cgroup/unified", fstype: "cgroup2"},
		{root: "/", point: "/sys/fs/cgroup/cpu,cpuacct", fstype: "cgroup", ctrls: []string{"cpu", "cpuacct"}},
		{root: "/", point: "/sys/fs/cgroup/memory", fstype: "cgroup", ctrls: []string{"memory"}},
		{root: "/docker/abc", point: "/sys/fs/cgroup/pids", fstype: "cgroup", ro: true, ctrls: []string{"pids"}},
		{root: "/", point: "/mnt/with space", fstype: "cgroup", name: "systemd"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	if m, ok := mountOf(got, "/sys/fs/cgroup/memory/wattd/x"); !ok || m.point != "/sys/fs/cgroup/memory" {
		t.Errorf("mountOf = %+v %v", m, ok)
	}
	if _, ok := mountOf(got, "/sys/fs/cgroupx"); ok {
		t.Error("a sibling path matched a mount")
	}
	if m, ok := v1Mount(got, "cpuacct", "/wattd"); !ok || m.point != "/sys/fs/cgroup/cpu,cpuacct" {
		t.Errorf("v1Mount cpuacct = %+v %v", m, ok)
	}
	if _, ok := v1Mount(got, "pids", "/wattd"); ok {
		t.Error("pids mounted at /docker/abc cannot hold /wattd")
	}
}

func TestQuotaAndSanitize(t *testing.T) {
	for cpus, want := range map[float64]int64{0.5: 50000, 1.5: 150000, 2: 200000, 0.0001: 1000} {
		if got := quota(cpus); got != want {
			t.Errorf("quota(%v) = %d, want %d", cpus, got, want)
		}
	}
	for in, want := range map[string]string{"api": "api", "my app/x:y": "my_app_x_y", "..": "_", "a.b-c_d": "a.b-c_d"} {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}
