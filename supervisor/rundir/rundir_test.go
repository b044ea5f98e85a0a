package rundir

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// shortTemp returns a fresh directory with a short path: t.TempDir() can
// exceed what a Unix socket path allows.
func shortTemp(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "wd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	// Resolve symlinks (macOS /tmp) so path comparisons are exact.
	if r, err := filepath.EvalSymlinks(d); err == nil {
		d = r
	}
	return d
}

// useBase points the package at a private base directory for one test.
func useBase(t *testing.T) string {
	t.Helper()
	base := filepath.Join(shortTemp(t), "b")
	t.Setenv(EnvRuntimeDir, base)
	return base
}

// serveAdmin makes d look live: something listens on its admin socket.
func serveAdmin(t *testing.T, d *Dir) {
	t.Helper()
	ln, err := net.Listen("unix", d.AdminSocket())
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
}

func mustCreate(t *testing.T, project string) *Dir {
	t.Helper()
	d, err := Create(project)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Remove() })
	return d
}

func mkdirs(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func TestChooseBase(t *testing.T) {
	env := func(m map[string]string) func(string) string {
		return func(k string) string { return m[k] }
	}
	tests := []struct {
		name        string
		env         map[string]string
		euid        int
		runWritable bool
		want        string
	}{
		{"override wins", map[string]string{EnvRuntimeDir: "/x/y/", "XDG_RUNTIME_DIR": "/run/user/1000"}, 1000, false, "/x/y"},
		{"xdg", map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"}, 1000, false, "/run/user/1000/wattd"},
		{"root with writable /run", nil, 0, true, "/run/wattd"},
		{"root without writable /run", nil, 0, false, "/tmp/wattd-0"},
		{"user falls back to tmp", nil, 1000, true, "/tmp/wattd-1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := chooseBase(env(tt.env), tt.euid, tt.runWritable, "/tmp"); got != tt.want {
				t.Errorf("chooseBase = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBaseCreatedPrivate(t *testing.T) {
	base := useBase(t)
	got, err := Base()
	if err != nil {
		t.Fatal(err)
	}
	if got != base {
		t.Errorf("Base() = %q, want %q", got, base)
	}
	fi, err := os.Stat(base)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("base mode = %04o, want 0700", perm)
	}
}

func TestBaseRejectsWritableByOthers(t *testing.T) {
	base := useBase(t)
	mkdirs(t, base)
	if err := os.Chmod(base, 0o777); err != nil {
		t.Fatal(err)
	}
	_, err := Base()
	if err == nil || !strings.Contains(err.Error(), "group or world writable") {
		t.Fatalf("Base() error = %v, want one about group or world writable", err)
	}
	if _, err := Create(shortTemp(t)); err == nil {
		t.Fatal("Create succeeded under a world-writable base")
	}
}

// A WATTD_RUNTIME_DIR that names a shared directory (a volume's mount
// point, writable by all) is refused with the sub-directory that works, not
// with "set WATTD_RUNTIME_DIR", which is set already.
func TestBaseNamedSharedSuggestsASubdirectory(t *testing.T) {
	base := useBase(t)
	mkdirs(t, base)
	if err := os.Chmod(base, 0o777); err != nil {
		t.Fatal(err)
	}
	_, err := Base()
	want := EnvRuntimeDir + "=" + filepath.Join(base, "wattd")
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Base() error = %v, want one suggesting %s", err, want)
	}
	t.Setenv(EnvRuntimeDir, filepath.Join(base, "wattd"))
	if _, err := Base(); err != nil {
		t.Fatalf("Base() under the suggested sub-directory: %v", err)
	}
}

// A base that cannot be made says which variable to set.
func TestBaseCannotCreateSaysWhatToSet(t *testing.T) {
	file := filepath.Join(shortTemp(t), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvRuntimeDir, "")
	t.Setenv("XDG_RUNTIME_DIR", filepath.Join(file, "run"))
	_, err := Base()
	if err == nil || !strings.Contains(err.Error(), "set "+EnvRuntimeDir+" to a directory wattd can write to") {
		t.Fatalf("Base() error = %v, want one saying to set %s", err, EnvRuntimeDir)
	}
	t.Setenv(EnvRuntimeDir, filepath.Join(file, "base"))
	_, err = Base()
	if err == nil || !strings.Contains(err.Error(), "set "+EnvRuntimeDir+" to a directory wattd's user can write to") {
		t.Fatalf("Base() error = %v, want one saying %s must change", err, EnvRuntimeDir)
	}
}

func TestBaseRejectsOtherOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a directory away")
	}
	base := useBase(t)
	mkdirs(t, base)
	if err := os.Chmod(base, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(base, 12345, 12345); err != nil {
		t.Fatal(err)
	}
	_, err := Base()
	if err == nil || !strings.Contains(err.Error(), "owned by uid 12345") {
		t.Fatalf("Base() error = %v, want one naming the owner", err)
	}
}

// TestBaseRejectsAParentOfAnotherUser: a base inside a directory another
// user owns could be renamed away by that user and replaced with one
// holding a preload of theirs, which root's workers would load.
func TestBaseRejectsAParentOfAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a directory away")
	}
	parent := t.TempDir()
	if err := os.Chown(parent, 12345, 12345); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(parent, "base")
	t.Setenv(EnvRuntimeDir, base)
	_, err := Base()
	if err == nil || !strings.Contains(err.Error(), "is inside "+parent+", which uid 12345 owns") {
		t.Fatalf("Base() error = %v, want one naming the parent and its owner", err)
	}
	if _, serr := os.Stat(base); serr == nil {
		t.Error("the base was made anyway")
	}
	// The same parent reached through a symbolic link of ours.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(parent, link); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvRuntimeDir, filepath.Join(link, "base"))
	if _, err := Base(); err == nil || !strings.Contains(err.Error(), "which uid 12345 owns") {
		t.Fatalf("Base() through a link: %v", err)
	}
}

func TestBaseRejectsForeignSymlink(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a symlink away")
	}
	tmp := shortTemp(t)
	target := filepath.Join(tmp, "target")
	mkdirs(t, target)
	os.Chmod(target, 0o700)
	link := filepath.Join(tmp, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, 12345, 12345); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvRuntimeDir, link)
	if _, err := Base(); err == nil || !strings.Contains(err.Error(), "symlink owned by uid 12345") {
		t.Fatalf("Base() error = %v, want one about the symlink's owner", err)
	}
}

func TestCreateLayout(t *testing.T) {
	base := useBase(t)
	proj := filepath.Join(shortTemp(t), "My Shop!")
	mkdirs(t, proj)

	d := mustCreate(t, proj)
	if !regexp.MustCompile(`^My_Shop_-[0-9a-f]{8}$`).MatchString(filepath.Base(d.Path)) {
		t.Errorf("runtime dir name = %q", filepath.Base(d.Path))
	}
	if filepath.Dir(d.Path) != base {
		t.Errorf("runtime dir %q not under base %q", d.Path, base)
	}
	if d.AdminSocket() != filepath.Join(d.Path, "admin.sock") {
		t.Errorf("AdminSocket = %q", d.AdminSocket())
	}
	if got, want := d.MeshSocket("api/v1", 2), filepath.Join(d.Path, "mesh", "api_v1-2.sock"); got != want {
		t.Errorf("MeshSocket = %q, want %q", got, want)
	}
	for _, p := range []string{d.Path, filepath.Join(d.Path, "mesh")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o700 {
			t.Errorf("%s mode = %04o, want 0700", p, perm)
		}
	}

	if err := d.WriteInfo("/srv/watt.json", "1.2.3"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(d.Path, "runtime.json"))
	if err != nil {
		t.Fatal(err)
	}
	var info map[string]any
	if err := json.Unmarshal(data, &info); err != nil {
		t.Fatal(err)
	}
	if info["pid"] != float64(os.Getpid()) || info["projectDir"] != proj ||
		info["configFile"] != "/srv/watt.json" || info["version"] != "1.2.3" || info["startedAt"] == nil {
		t.Errorf("runtime.json = %s", data)
	}
	// No temp files left next to it.
	entries, _ := os.ReadDir(d.Path)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("leftover %s", e.Name())
		}
	}

	if err := d.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.Path); !os.IsNotExist(err) {
		t.Errorf("runtime dir still there after Remove: %v", err)
	}
	if err := d.Remove(); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}

func TestCreateSameProjectSameDir(t *testing.T) {
	useBase(t)
	tmp := shortTemp(t)
	proj := filepath.Join(tmp, "app")
	link := filepath.Join(tmp, "link")
	mkdirs(t, proj)
	if err := os.Symlink(proj, link); err != nil {
		t.Fatal(err)
	}
	d1 := mustCreate(t, proj)
	path := d1.Path
	d1.Remove()
	d2 := mustCreate(t, link+"/")
	if d2.Path != path {
		t.Errorf("same project through a symlink got %q, want %q", d2.Path, path)
	}
	other := filepath.Join(tmp, "x", "app")
	mkdirs(t, other)
	if d3 := mustCreate(t, other); d3.Path == path {
		t.Errorf("different projects with the same basename share %q", path)
	}
}

func TestCreateRefusesSecondInstance(t *testing.T) {
	useBase(t)
	proj := shortTemp(t)
	d := mustCreate(t, proj)
	_, err := Create(proj)
	if !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second Create error = %v, want ErrAlreadyRunning", err)
	}
	if want := fmt.Sprintf("pid %d", os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name %s", err, want)
	}
	// The first one's directory is untouched.
	if _, err := os.Stat(filepath.Join(d.Path, "runtime.json")); err != nil {
		t.Errorf("first runtime's runtime.json: %v", err)
	}
}

// A second start of a running project from another base (a root login
// shell's $XDG_RUNTIME_DIR against /run/wattd) is turned away too, naming
// the live one: what the runtime owns outside its directory (cgroups) is
// named after the project alone, and a start that took it for leftovers
// would destroy the live instance's workers.
func TestCreateRefusesTheProjectRunningFromAnotherBase(t *testing.T) {
	useBase(t)
	proj := shortTemp(t)
	d := mustCreate(t, proj)
	useBase(t) // another base
	_, err := Create(proj)
	if !errors.Is(err, ErrProjectRunning) {
		t.Fatalf("Create from another base: %v, want ErrProjectRunning", err)
	}
	if want := fmt.Sprintf("pid %d", os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name %s", err, want)
	}
	// Nothing is left in the second base, and the first is untouched.
	base, err := Base()
	if err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(base); len(ents) != 0 {
		t.Errorf("the refused start left %v in its base", ents)
	}
	if _, err := os.Stat(filepath.Join(d.Path, "runtime.json")); err != nil {
		t.Errorf("first runtime's runtime.json: %v", err)
	}
	// Once the first is gone, the project can start from the other base.
	d.Remove()
	mustCreate(t, proj)
}

func TestCreateClearsLeftovers(t *testing.T) {
	useBase(t)
	proj := shortTemp(t)
	d := mustCreate(t, proj)
	path := d.Path
	// Simulate a crash: the lock and the claim go away with the process,
	// the files stay.
	d.lock.Close()
	d.lock = nil
	d.claim.Close()
	d.claim = nil
	stale := staleSocket(t, d.AdminSocket())
	mesh := staleSocket(t, d.MeshSocket("web", 0))

	d2 := mustCreate(t, proj)
	if d2.Path != path {
		t.Fatalf("took %q, want the leftover %q", d2.Path, path)
	}
	for _, p := range []string{stale, mesh} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s survived: %v", p, err)
		}
	}
}

func staleSocket(t *testing.T, path string) string {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	return path
}

func TestCreateRejectsLongPath(t *testing.T) {
	base := filepath.Join(shortTemp(t), strings.Repeat("b", 90))
	t.Setenv(EnvRuntimeDir, base)
	_, err := Create(shortTemp(t))
	if err == nil || !strings.Contains(err.Error(), EnvRuntimeDir) {
		t.Fatalf("Create error = %v, want a hint about %s", err, EnvRuntimeDir)
	}
}

func TestSanitize(t *testing.T) {
	tests := map[string]string{
		"shop":                    "shop",
		"my shop":                 "my_shop",
		"ü€":                      "project",
		"/":                       "project",
		"..":                      "project",
		"a.b-c_d":                 "a.b-c_d",
		strings.Repeat("x", 40):   strings.Repeat("x", maxNameLen),
		"../../etc/passwd":        ".._.._etc_passwd",
		"app\x00name\nwith\tctrl": "app_name_with_ctrl",
	}
	for in, want := range tests {
		if got := sanitize(in, maxNameLen); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFindExplicitSocket(t *testing.T) {
	useBase(t)
	got, err := Find(FindOptions{Socket: "/some/where.sock", Cwd: "/"})
	if err != nil || got != "/some/where.sock" {
		t.Fatalf("Find = %q, %v", got, err)
	}
}

func TestFindNoneRunning(t *testing.T) {
	base := useBase(t)
	// Missing base directory.
	if _, err := Find(FindOptions{Cwd: "/"}); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Find error = %v, want ErrNotRunning", err)
	}
	// A stale runtime only.
	d := mustCreate(t, shortTemp(t))
	staleSocket(t, d.AdminSocket())
	_, err := Find(FindOptions{Cwd: "/"})
	if !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Find error = %v, want ErrNotRunning", err)
	}
	if !strings.Contains(err.Error(), base) {
		t.Errorf("error %q does not say where it looked", err)
	}
}

func TestFindByCwdAndAncestor(t *testing.T) {
	useBase(t)
	tmp := shortTemp(t)
	outer := filepath.Join(tmp, "mono")
	inner := filepath.Join(outer, "svc")
	sibling := filepath.Join(tmp, "mono2")
	deep := filepath.Join(inner, "src", "lib")
	mkdirs(t, deep, sibling)

	var dirs = map[string]*Dir{}
	for _, p := range []string{outer, inner, sibling} {
		d := mustCreate(t, p)
		serveAdmin(t, d)
		dirs[p] = d
	}
	tests := []struct {
		cwd, want string
	}{
		{outer, outer},
		{inner, inner},
		{deep, inner},                      // closest ancestor wins
		{filepath.Join(outer, "x"), outer}, // ancestor
		{sibling, sibling},                 // /mono is not an ancestor of /mono2
	}
	for _, tt := range tests {
		got, err := Find(FindOptions{Cwd: tt.cwd})
		if err != nil {
			t.Errorf("Find(%s): %v", tt.cwd, err)
			continue
		}
		if want := dirs[tt.want].AdminSocket(); got != want {
			t.Errorf("Find(%s) = %s, want %s", tt.cwd, got, want)
		}
	}
}

func TestFindOnlyOne(t *testing.T) {
	useBase(t)
	d := mustCreate(t, shortTemp(t))
	serveAdmin(t, d)
	// A stale sibling does not make it ambiguous.
	stale := mustCreate(t, shortTemp(t))
	staleSocket(t, stale.AdminSocket())

	got, err := Find(FindOptions{Cwd: "/"})
	if err != nil {
		t.Fatal(err)
	}
	if got != d.AdminSocket() {
		t.Errorf("Find = %s, want %s", got, d.AdminSocket())
	}
	list, err := List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].PID != os.Getpid() || list[0].Socket != d.AdminSocket() || list[0].Dir != d.Path {
		t.Errorf("List = %+v", list)
	}
}

func TestFindSeveral(t *testing.T) {
	useBase(t)
	a, b := shortTemp(t), shortTemp(t)
	for _, p := range []string{a, b} {
		serveAdmin(t, mustCreate(t, p))
	}
	_, err := Find(FindOptions{Cwd: "/"})
	if !errors.Is(err, ErrAmbiguous) {
		t.Fatalf("Find error = %v, want ErrAmbiguous", err)
	}
	msg := err.Error()
	for _, want := range []string{a, b, fmt.Sprintf("(pid %d)", os.Getpid()), "--socket"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
}

func TestListIgnoresMissingInfo(t *testing.T) {
	useBase(t)
	d := mustCreate(t, shortTemp(t))
	serveAdmin(t, d)
	if err := os.Remove(filepath.Join(d.Path, "runtime.json")); err != nil {
		t.Fatal(err)
	}
	list, err := List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Socket != d.AdminSocket() || list[0].ProjectDir != "" {
		t.Fatalf("List = %+v", list)
	}
	// Not matched by directory, but still found as the only one.
	if got, err := Find(FindOptions{Cwd: "/"}); err != nil || got != d.AdminSocket() {
		t.Errorf("Find = %q, %v", got, err)
	}
}

func TestWithin(t *testing.T) {
	tests := []struct {
		path, dir string
		want      bool
	}{
		{"/a/b", "/a/b", true},
		{"/a/b/c", "/a/b", true},
		{"/a/bc", "/a/b", false},
		{"/a", "/a/b", false},
		{"/anything", "/", true},
	}
	for _, tt := range tests {
		if got := within(tt.path, tt.dir); got != tt.want {
			t.Errorf("within(%q, %q) = %v", tt.path, tt.dir, got)
		}
	}
}

// A process of another user holding the claim's abstract name (anyone can
// bind one) does not keep the project from starting: it can be no wattd
// whose workers or cgroups this one could touch. The start goes on, with
// a warning naming the holder.
func TestCreateIgnoresAClaimHeldByAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the squatter as another user")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("no setpriv")
	}
	// Not a shim under root's home, which the other user cannot read.
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	useBase(t)
	proj := shortTemp(t)
	name := claimAddr(dirName(canonical(proj))).Name
	squat := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
		"/usr/bin/python3", "-c", `import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("\0" + sys.argv[1]); s.listen(1); print("bound", flush=True); time.sleep(60)`, strings.TrimPrefix(name, "@"))
	out, err := squat.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := squat.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { squat.Process.Kill(); squat.Wait() })
	line := make([]byte, 6)
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "bound\n" {
		t.Fatalf("squatter: %q %v", line, err)
	}
	d, err := Create(proj)
	if err != nil {
		t.Fatalf("Create with another user's process on the claim: %v", err)
	}
	defer d.Remove()
	if len(d.Warnings) != 1 || !strings.Contains(d.Warnings[0], fmt.Sprintf("pid %d of uid 65534", squat.Process.Pid)) {
		t.Errorf("warnings %q, want one naming the squatter", d.Warnings)
	}
}

// TestFindRefusesToFallBackWhenTheProjectsRuntimeIsUnreachable: in the
// directory of a project whose wattd runs but whose admin socket is gone
// (deleted by a tmp cleaner, say), `wattd ctl stop` must not go to the
// only other runtime running, a different project.
func TestFindRefusesToFallBackWhenTheProjectsRuntimeIsUnreachable(t *testing.T) {
	useBase(t)
	other := mustCreate(t, shortTemp(t))
	serveAdmin(t, other)
	proj := shortTemp(t)
	mine := mustCreate(t, proj) // runtime.json names this (live) process
	mine.SetName("mine")
	if err := mine.WriteInfo("watt.json", "test"); err != nil {
		t.Fatal(err)
	}
	// No admin socket at all: deleted.

	for _, opts := range []FindOptions{{Cwd: proj}, {Cwd: filepath.Join(proj, "sub")}, {Name: "mine", Cwd: "/"}} {
		got, err := Find(opts)
		if !errors.Is(err, ErrUnreachable) {
			t.Fatalf("Find(%+v) = %q, %v; want ErrUnreachable, not another project's runtime", opts, got, err)
		}
		if !strings.Contains(err.Error(), mine.AdminSocket()) || !strings.Contains(err.Error(), "kill -TERM") {
			t.Errorf("error %q does not name the socket and the way out", err)
		}
	}
	// Elsewhere, the only live runtime is still the default.
	if got, err := Find(FindOptions{Cwd: "/"}); err != nil || got != other.AdminSocket() {
		t.Fatalf("Find from / = %q, %v; want %s", got, err, other.AdminSocket())
	}
	// A crashed wattd's directory, whose pid (this process's here) lives
	// on in another process: its lock is not held, so it is no runtime,
	// and the project's directory is no place to fall back from either
	// (a unit's ExecStop=wattd ctl stop after its wattd was killed).
	if err := mine.lock.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := Find(FindOptions{Cwd: proj}); !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "ended without removing") ||
		!strings.Contains(err.Error(), "--name") {
		t.Fatalf("Find beside a crashed runtime's leftover = %q, %v; want ErrNotRunning, not the live %s", got, err, other.AdminSocket())
	}
	// The runtime directory removed while the project's wattd runs (its
	// claim, held here): not another project's either.
	if err := os.RemoveAll(mine.Path); err != nil {
		t.Fatal(err)
	}
	if got, err := Find(FindOptions{Cwd: filepath.Join(proj, "sub")}); !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "no runtime directory of it") {
		t.Fatalf("Find in a running project without its directory = %q, %v; want ErrUnreachable", got, err)
	}
	// Nothing left of the project: the only live runtime is the default.
	mine.claim.Close()
	mine.claim = nil
	if got, err := Find(FindOptions{Cwd: proj}); err != nil || got != other.AdminSocket() {
		t.Fatalf("Find in a project with nothing left of its runtime = %q, %v; want the live %s", got, err, other.AdminSocket())
	}
}

func TestFlockHeld(t *testing.T) {
	locks := "1: FLOCK  ADVISORY  WRITE 4711 fd:01:1234 0 EOF\n2: POSIX  ADVISORY  WRITE 4712 fd:01:99 0 EOF\n"
	for _, c := range []struct {
		major, minor uint32
		ino          uint64
		want         bool
	}{{0xfd, 1, 1234, true}, {0xfd, 1, 99, false}, {0xfd, 2, 1234, false}, {8, 1, 1234, false}} {
		if got := flockHeld(locks, c.major, c.minor, c.ino); got != c.want {
			t.Errorf("flockHeld(%x:%x:%d) = %v, want %v", c.major, c.minor, c.ino, got, c.want)
		}
	}
}

// TestFindAfterADeployMovedTheLink: a project started through a symlink
// (a deploy's current/ pointing to a release) keeps the link's name and
// is found from the link's path after the link moved to the next release,
// with another runtime running, so that "the only one" cannot stand in.
func TestFindAfterADeployMovedTheLink(t *testing.T) {
	useBase(t)
	tmp := shortTemp(t)
	v1, v2 := filepath.Join(tmp, "rel", "v1"), filepath.Join(tmp, "rel", "v2")
	current := filepath.Join(tmp, "current")
	mkdirs(t, v1, v2)
	if err := os.Symlink(v1, current); err != nil {
		t.Fatal(err)
	}
	d := mustCreate(t, current)
	serveAdmin(t, d)
	serveAdmin(t, mustCreate(t, shortTemp(t)))
	if got := NameFor(current); got != "current" {
		t.Errorf("NameFor(%s) = %q, want current (the link's name, not the release's)", current, got)
	}
	if info := d.Info(); info.ProjectPath != current || info.ProjectDir != canonical(v1) {
		t.Errorf("info: projectPath %q, projectDir %q; want %s and %s", info.ProjectPath, info.ProjectDir, current, canonical(v1))
	}
	// The deploy: the link now points to v2.
	next := current + ".new"
	if err := os.Symlink(v2, next); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, current); err != nil {
		t.Fatal(err)
	}
	for _, cwd := range []string{current, filepath.Join(v1, ".")} {
		got, err := Find(FindOptions{Cwd: cwd})
		if err != nil || got != d.AdminSocket() {
			t.Errorf("Find from %s = %q, %v; want %s", cwd, got, err, d.AdminSocket())
		}
	}
	// Without a directory given, Find takes os.Getwd, which is the shell's
	// $PWD when that names the working directory, its symlinks kept.
	t.Chdir(current)
	t.Setenv("PWD", current)
	if got, err := Find(FindOptions{}); err != nil || got != d.AdminSocket() {
		t.Errorf("Find from the link's directory (PWD=%s) = %q, %v; want %s", current, got, err, d.AdminSocket())
	}
}

// TestRestoreAfterRemoval: a runtime directory removed while its runtime
// runs comes back with its lock, runtime.json, mesh directory and the
// sockets under their names (the same listeners), and List finds it again;
// a socket removed on purpose stays removed; a removal of the base as well
// loses the sockets, and Restore says which.
func TestRestoreAfterRemoval(t *testing.T) {
	base := useBase(t)
	d := mustCreate(t, filepath.Join(shortTemp(t), "proj"))
	serveAdmin(t, d)
	meshSock := d.MeshSocket("api", 0)
	ln, err := net.Listen("unix", meshSock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	gone := d.MeshSocket("old", 0)
	lg, err := net.Listen("unix", gone)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := d.Restore(); err != nil || r.Any() {
		t.Fatalf("Restore with nothing missing: %+v, %v", r, err)
	}
	d.RemoveSocket(gone)
	lg.Close()
	// Removed on purpose (a worker slot scaled away): nothing to say.
	if r, err := d.Restore(); err != nil || r.Any() {
		t.Fatalf("Restore after a socket removed on purpose: %+v, %v", r, err)
	}

	if err := os.RemoveAll(d.Path); err != nil {
		t.Fatal(err)
	}
	r, err := d.Restore()
	if err != nil || !r.Dir || len(r.Lost) != 0 {
		t.Fatalf("Restore: %+v, %v", r, err)
	}
	for _, p := range []string{lockFileName, infoFileName, adminSocketName, "mesh/api-0.sock"} {
		if _, err := os.Lstat(filepath.Join(d.Path, p)); err != nil {
			t.Errorf("after Restore: %v", err)
		}
	}
	if _, err := os.Lstat(gone); err == nil {
		t.Errorf("%s was removed on purpose and came back", gone)
	}
	for _, s := range []string{d.AdminSocket(), meshSock} {
		c, err := net.Dial("unix", s)
		if err != nil {
			t.Errorf("dial %s after Restore: %v", s, err)
			continue
		}
		c.Close()
	}
	if !sameLock(t, d) {
		t.Error("the lock was not taken again on the new lock file")
	}
	live, err := List()
	if err != nil || len(live) != 1 || live[0].Dir != d.Path {
		t.Errorf("List after Restore: %+v, %v", live, err)
	}
	if r, err := d.Restore(); err != nil || r.Any() {
		t.Errorf("second Restore: %+v, %v", r, err)
	}

	if err := os.RemoveAll(base); err != nil {
		t.Fatal(err)
	}
	r, err = d.Restore()
	if err != nil || !r.Dir || !slices.Contains(r.Lost, adminSocketName) {
		t.Fatalf("Restore after the base went: %+v, %v", r, err)
	}
	if _, err := os.Lstat(filepath.Join(d.Path, infoFileName)); err != nil {
		t.Errorf("after Restore: %v", err)
	}
}

// sameLock reports whether d holds the lock file at its path.
func sameLock(t *testing.T, d *Dir) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sameLock() && d.sameDir()
}

// TestRootListsAnotherUsersBase: root, who may administer every user's
// runtimes, lists those in another user's base (WATTD_RUNTIME_DIR set to
// it), as long as nobody but its owner can write there.
func TestRootListsAnotherUsersBase(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	base := useBase(t)
	d := mustCreate(t, shortTemp(t))
	serveAdmin(t, d)
	if err := os.Chown(base, 12345, 12345); err != nil {
		t.Fatal(err)
	}
	list, err := List()
	if err != nil || len(list) != 1 || list[0].Socket != d.AdminSocket() {
		t.Fatalf("List of uid 12345's base as root = %+v, %v", list, err)
	}
	if err := os.Chmod(base, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := List(); err == nil || !strings.Contains(err.Error(), "world writable") {
		t.Errorf("List of a world-writable base = %v", err)
	}
	os.Chown(base, 0, 0)
	os.Chmod(base, 0o700)
}

// TestRestoreAfterIntruder: a socket of the runtime's whose name something
// else took (a file, a dangling symbolic link) keeps its second name; the
// intruder is left alone and named once; the socket, the same listener,
// is back once the name is free again.
func TestRestoreAfterIntruder(t *testing.T) {
	useBase(t)
	d := mustCreate(t, filepath.Join(shortTemp(t), "proj"))
	serveAdmin(t, d)
	meshSock := d.MeshSocket("api", 0)
	ln, err := net.Listen("unix", meshSock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if r, err := d.Restore(); err != nil || r.Any() {
		t.Fatalf("Restore with nothing missing: %+v, %v", r, err)
	}
	for _, c := range []struct {
		rel, kind string
		put       func(p string) error
	}{
		{adminSocketName, "a regular file", func(p string) error { return os.WriteFile(p, []byte("x\n"), 0o600) }},
		{adminSocketName, "a symbolic link", func(p string) error { return os.Symlink("/nonexistent/admin.sock", p) }},
		{"mesh/api-0.sock", "a directory", func(p string) error { return os.Mkdir(p, 0o700) }},
	} {
		p := filepath.Join(d.Path, c.rel)
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := c.put(p); err != nil {
			t.Fatal(err)
		}
		want := c.rel + ": " + c.kind
		r, err := d.Restore()
		if err != nil || !slices.Equal(r.Blocked, []string{want}) || len(r.Files) != 0 || len(r.Lost) != 0 {
			t.Fatalf("Restore = %+v, %v; want blocked %q", r, err, want)
		}
		// Said once; the next checks (every 10 s in wattd) keep waiting.
		for range 2 {
			if r, err := d.Restore(); err != nil || r.Any() {
				t.Fatalf("%s: Restore again = %+v, %v", want, r, err)
			}
		}
		if fi, err := os.Lstat(p); err != nil || fi.Mode().Type() == fs.ModeSocket {
			t.Fatalf("%s: the intruder was not left alone: %v", want, err)
		}
		if !isSocket(filepath.Join(d.socketsDir(), spareName(c.rel))) {
			t.Fatalf("%s: the second name went", want)
		}
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
		r, err = d.Restore()
		if err != nil || !slices.Equal(r.Files, []string{c.rel}) || len(r.Blocked) != 0 {
			t.Fatalf("%s removed: Restore = %+v, %v; want %s restored", want, r, err, c.rel)
		}
		conn, err := net.Dial("unix", p)
		if err != nil {
			t.Fatalf("%s: dial after Restore: %v", want, err)
		}
		conn.Close()
	}
	// A socket removed on purpose while its name is taken is forgotten.
	p := filepath.Join(d.Path, adminSocketName)
	os.Remove(p)
	os.WriteFile(p, nil, 0o600)
	if r, _ := d.Restore(); len(r.Blocked) != 1 {
		t.Fatalf("Restore = %+v", r)
	}
	d.RemoveSocket(p)
	if r, err := d.Restore(); err != nil || r.Any() {
		t.Fatalf("Restore after RemoveSocket: %+v, %v", r, err)
	}
	if _, err := os.Lstat(filepath.Join(d.socketsDir(), spareName(adminSocketName))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("second name of a socket removed on purpose: %v", err)
	}
	// What took its name is not wattd's, and stays.
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("the file that took the socket's name was removed with it: %v", err)
	}
}
