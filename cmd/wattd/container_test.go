package main_test

// wattd as a hardened container runs it: a read-only root file system and
// an arbitrary uid with no passwd entry.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// openshiftUID is the kind of uid OpenShift gives a pod: no passwd entry,
// group 0.
const openshiftUID = 1000680000

// TestReadOnlyRootFilesystem runs wattd as a Kubernetes pod with
// readOnlyRootFilesystem and OpenShift's arbitrary uid would: the project
// and the temporary directory read-only, and one writable volume, an
// emptyDir (owned by root, mode 0777). With nowhere to write, and with
// WATTD_RUNTIME_DIR naming the volume itself, or a runtime directory left
// in the image, wattd exits 1 at once and says what to set; with
// WATTD_RUNTIME_DIR a sub-directory of the volume it serves through the
// mesh, `wattd ctl` finds it, and SIGTERM stops it with exit 0.
func TestReadOnlyRootFilesystem(t *testing.T) {
	integration(t)
	if os.Geteuid() != 0 {
		t.Skip("mount namespaces and another uid need root")
	}
	for _, tool := range []string{"unshare", "setpriv", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s here", tool)
		}
	}
	if err := exec.Command("unshare", "-m", "true").Run(); err != nil {
		t.Skipf("no mount namespaces here: %v", err)
	}
	root := t.TempDir()
	bin := filepath.Join(root, "wattd")
	app := filepath.Join(root, "app")
	tmp := filepath.Join(root, "tmp")
	volume := filepath.Join(root, "volume")
	for _, d := range []string{filepath.Join(app, "caller"), filepath.Join(app, "api"), tmp, volume} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(tmp, 0o1777); err != nil {
		t.Fatal(err)
	}
	copyFile(t, wattdBin, bin, 0o755)
	for _, f := range []string{"index.js", "package.json"} {
		copyFile(t, fixture(filepath.Join("apps", "caller", f)), filepath.Join(app, "caller", f), 0o644)
		copyFile(t, fixture(filepath.Join("apps", "plain", f)), filepath.Join(app, "api", f), 0o644)
	}
	writeJSON(t, filepath.Join(app, "watt.json"), map[string]any{
		"entrypoint": "caller",
		"server":     map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"applications": []any{
			map[string]any{"id": "caller", "path": "./caller"},
			map[string]any{"id": "api", "path": "./api"},
		},
	})
	// t.TempDir's directories are private; the pod's user must reach the
	// project.
	for p := root; strings.HasPrefix(p, os.TempDir()+"/"); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	asPod := []string{"setpriv", "--reuid=" + strconv.Itoa(openshiftUID), "--regid=0", "--clear-groups", "--"}
	// root (project, temporary directory) read-only in a mount namespace of
	// its own, then the volume mounted on it; wattd is the same process as
	// unshare, sh and setpriv, which exec it in turn.
	wrap := append([]string{"unshare", "-m", "--propagation", "private", "sh", "-c",
		`mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && mount -t tmpfs -o mode=0777 volume "$0/volume" && exec "$@"`, root,
	}, asPod...)
	env := func(runtimeDir string) []string {
		return []string{"WATTD_RUNTIME_DIR=" + runtimeDir, "XDG_RUNTIME_DIR=", "TMPDIR=" + tmp, "HOME=/"}
	}

	runtimeDir := filepath.Join(volume, "wattd")
	d := startWattd(t, app, freePort(t), startOpts{bin: bin, env: env(runtimeDir), wrap: wrap})
	body := waitHTTP(t, d.url("/fetch?app=api&path=/"), 30*time.Second)
	if !strings.Contains(body, `\"app\":\"api\"`) {
		t.Fatalf("the mesh call did not reach api: %s", body)
	}
	// `kubectl exec` into the pod: its mount namespace, user and env.
	ctl := func(args ...string) string {
		t.Helper()
		argv := append([]string{"-t", strconv.Itoa(d.cmd.Process.Pid), "-m", "--"}, asPod...)
		cmd := exec.Command("nsenter", append(argv, append([]string{bin, "ctl"}, args...)...)...)
		cmd.Dir = app
		cmd.Env = append(os.Environ(), env(runtimeDir)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("wattd ctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	ctl("restart", "api")
	if out := ctl("ps"); !strings.Contains(out, "caller*") || strings.Count(out, "ready") != 2 {
		t.Fatalf("ctl ps:\n%s", out)
	}
	// The runtime directory's name, to leave one in the "image" below.
	entries, err := runtimeDirs(fmt.Sprintf("/proc/%d/root%s", d.cmd.Process.Pid, runtimeDir))
	if err != nil || len(entries) != 1 {
		t.Fatalf("the runtime directory in the volume: %v %v", entries, err)
	}
	d.signal(syscall.SIGTERM)
	if code := d.wait(20 * time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d, want 0:\n%s", code, d.out.String())
	}

	// A runtime directory left in the image by a wattd run while it was
	// built: the lock file cannot be opened for writing.
	baked := filepath.Join(root, "baked")
	if err := os.MkdirAll(filepath.Join(baked, entries[0].Name()), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(baked, entries[0].Name(), "runtime.lock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{baked, filepath.Join(baked, entries[0].Name()), filepath.Join(baked, entries[0].Name(), "runtime.lock")} {
		if err := os.Chown(p, openshiftUID, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		runtimeDir, want string
	}{
		{"", "set WATTD_RUNTIME_DIR to a directory wattd can write to"},
		{volume, "set it to a sub-directory, such as WATTD_RUNTIME_DIR=" + filepath.Join(volume, "wattd")},
		{baked, "read-only file system; set WATTD_RUNTIME_DIR to a directory wattd can write to"},
	} {
		d := startWattd(t, app, freePort(t), startOpts{bin: bin, env: env(c.runtimeDir), wrap: wrap})
		if code := d.wait(20 * time.Second); code != 1 {
			t.Fatalf("WATTD_RUNTIME_DIR=%q: exit %d, want 1:\n%s", c.runtimeDir, code, d.out.String())
		}
		if out := d.out.String(); !strings.Contains(out, c.want) {
			t.Fatalf("WATTD_RUNTIME_DIR=%q: the error does not say %q:\n%s", c.runtimeDir, c.want, out)
		}
	}
}
