package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wattd/wattd/supervisor/procnet"
)

// mount is one line of /proc/self/mountinfo that matters here.
type mount struct {
	root   string   // the path inside the filesystem that is mounted
	point  string   // where it is mounted
	ro     bool     // mounted read-only
	fstype string   // cgroup or cgroup2
	ctrls  []string // v1: the controllers of the hierarchy
	name   string   // v1: a named hierarchy's name (name=systemd)
}

func (m mount) has(ctrl string) bool {
	for _, c := range m.ctrls {
		if c == ctrl {
			return true
		}
	}
	return false
}

// dirOf is the directory of the cgroup at path p of the hierarchy (as
// /proc/self/cgroup names it), which must be within m.root.
func (m mount) dirOf(p string) string {
	return path.Join(m.point, strings.TrimPrefix(p, m.root))
}

// mountinfoPath is a variable so tests can read a prepared table.
var mountinfoPath = "/proc/self/mountinfo"

// cgroupMounts lists the cgroup filesystems mounted in wattd's mount
// namespace. Line format (proc(5)):
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
func cgroupMounts() ([]mount, error) {
	f, err := os.Open(mountinfoPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 6 || sep+3 > len(fields) {
			continue
		}
		fstype := fields[sep+1]
		if fstype != "cgroup" && fstype != "cgroup2" {
			continue
		}
		m := mount{root: unescape(fields[3]), point: unescape(fields[4]), fstype: fstype}
		for _, o := range strings.Split(fields[5], ",") {
			if o == "ro" {
				m.ro = true
			}
		}
		if fstype == "cgroup" {
			for _, o := range strings.Split(fields[sep+3], ",") {
				switch {
				case strings.HasPrefix(o, "name="):
					m.name = strings.TrimPrefix(o, "name=")
				case o == "rw", o == "ro", strings.Contains(o, "="), o == "clone_children", o == "noprefix", o == "xattr", o == "nsdelegate":
				default:
					m.ctrls = append(m.ctrls, o)
				}
			}
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// within reports whether path is dir or below it; both clean.
func within(path, dir string) bool {
	if dir == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// mountOf returns the cgroup mount that holds path (the longest mount
// point containing it), or false.
func mountOf(mounts []mount, path string) (mount, bool) {
	best, found := mount{}, false
	for _, m := range mounts {
		if within(path, m.point) && (!found || len(m.point) > len(best.point)) {
			best, found = m, true
		}
	}
	return best, found
}

// writeFile writes one value into a cgroup file. The file is created when
// missing only so that tests can lay out a hierarchy in a plain directory;
// in cgroupfs every file a kernel supports already exists.
func writeFile(dir, name, value string) error {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, filepath.Join(dir, name), err)
	}
	return nil
}

func readFile(dir, name string) (string, error) {
	b, err := procnet.ReadFile(filepath.Join(dir, name))
	return strings.TrimSpace(string(b)), err
}

func readUint(dir, name string) (uint64, error) {
	s, err := readFile(dir, name)
	if err != nil {
		return 0, err
	}
	if s == "max" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", filepath.Join(dir, name), err)
	}
	return n, nil
}

// limitBytes reads a memory limit as a cgroup file gives it: false for
// none (v2 "max", v1's page-rounded largest value).
func limitBytes(s string) (uint64, bool) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	return n, err == nil && n < 1<<62
}

// procs lists the processes of a cgroup; a missing directory has none.
func procs(dir string) ([]int, error) {
	s, err := readFile(dir, "cgroup.procs")
	// ENODEV: the directory is being removed at this moment (at a stop, a
	// worker's own exit and the runtime's close may remove its group
	// together); a group on its way out has no process left.
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENODEV) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []int
	for _, f := range strings.Fields(s) {
		if pid, err := strconv.Atoi(f); err == nil {
			out = append(out, pid)
		}
	}
	return out, nil
}

// rmdir removes a cgroup directory, retrying while the kernel still
// drains exiting tasks (EBUSY) for up to wait.
func rmdir(dir string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// removeTree removes dir and every directory below it, deepest first,
// killing what still runs in each; used for leftovers and at Close.
// Plain files are left alone: in cgroupfs they go with their directory.
func removeTree(dir string, kill func(dir string) error) (killed int, err error) {
	entries, rerr := os.ReadDir(dir)
	if errors.Is(rerr, os.ErrNotExist) {
		return 0, nil
	}
	for _, e := range entries {
		if e.IsDir() {
			n, cerr := removeTree(filepath.Join(dir, e.Name()), kill)
			killed += n
			err = errors.Join(err, cerr)
		}
	}
	if pids, _ := procs(dir); len(pids) > 0 {
		killed += len(pids)
		err = errors.Join(err, kill(dir))
	}
	return killed, errors.Join(err, rmdir(dir, 2*time.Second))
}
