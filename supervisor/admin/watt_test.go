package admin

import (
	"context"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// startWatt serves the management API of b under a private TMPDIR and
// returns the socket's path.
func startWatt(t *testing.T, b Backend, o WattOptions) (*Server, string) {
	t.Helper()
	t.Setenv("TMPDIR", shortTemp(t))
	s, err := ServeWatt(context.Background(), b, o, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, s.Path()
}

// TestWattSocketPlace: the socket is where wattpm looks, in a 0700
// directory named by wattd's pid under 1777 shared ones, and Close
// removes that directory.
func TestWattSocketPlace(t *testing.T) {
	s, sock := startWatt(t, newFakeBackend(), WattOptions{Version: "test"})
	want := filepath.Join(os.Getenv("TMPDIR"), "platformatic", "runtimes", strconv.Itoa(os.Getpid()), "socket")
	if sock != want {
		t.Fatalf("socket %s, want %s", sock, want)
	}
	for dir, mode := range map[string]os.FileMode{
		filepath.Dir(sock):                             0o700 | os.ModeDir,
		filepath.Dir(filepath.Dir(sock)):               0o777 | os.ModeDir | os.ModeSticky,
		filepath.Dir(filepath.Dir(filepath.Dir(sock))): 0o777 | os.ModeDir | os.ModeSticky,
	} {
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode() != mode {
			t.Errorf("%s: %v, err %v; want %v", dir, fi.Mode(), err, mode)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(sock)); !os.IsNotExist(err) {
		t.Errorf("pid directory left after Close: %v", err)
	}
}

// TestWattPIDDirChecks: a stale directory of ours with our pid is
// replaced, one whose socket answers is not; a symbolic link, another
// kind of file, or a world-writable parent without the sticky bit is
// refused.
func TestWattPIDDirChecks(t *testing.T) {
	base := filepath.Join(shortTemp(t), "platformatic", "runtimes")
	if err := os.MkdirAll(filepath.Join(base, "42", "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := makeWattPIDDir(base, 42)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "old")); !os.IsNotExist(err) {
		t.Errorf("stale content kept: %v", err)
	}
	// A directory whose socket answers is another live runtime's, one
	// with the same pid in another PID namespace: left alone. Once
	// nobody answers, it is stale and replaced.
	ln, err := net.Listen("unix", filepath.Join(dir, "socket"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := makeWattPIDDir(base, 42); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("live socket: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "socket")); err != nil {
		t.Errorf("live socket removed: %v", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := makeWattPIDDir(base, 42); err != nil {
		t.Errorf("stale socket: %v", err)
	}
	if err := os.Symlink("/etc", filepath.Join(base, "43")); err != nil {
		t.Fatal(err)
	}
	if _, err := makeWattPIDDir(base, 43); err == nil || !strings.Contains(err.Error(), "not a directory of ours") {
		t.Errorf("symlink: %v", err)
	}
	open := filepath.Join(shortTemp(t), "platformatic")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := makeWattPIDDir(filepath.Join(open, "runtimes"), 44); err == nil || !strings.Contains(err.Error(), "without the sticky bit") {
		t.Errorf("world-writable parent: %v", err)
	}
	link := filepath.Join(shortTemp(t), "platformatic")
	if err := os.Symlink(shortTemp(t), link); err != nil {
		t.Fatal(err)
	}
	if _, err := makeWattPIDDir(filepath.Join(link, "runtimes"), 45); err == nil || !strings.Contains(err.Error(), "is a symbolic link, not a directory") {
		t.Errorf("symlinked parent: %v", err)
	}
	// A shared directory another user made first: its owner could move
	// ours away and answer in its place.
	if os.Geteuid() == 0 {
		theirs := filepath.Join(shortTemp(t), "platformatic")
		if err := os.MkdirAll(filepath.Join(theirs, "runtimes"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{theirs, filepath.Join(theirs, "runtimes")} {
			if err := os.Chmod(d, 0o777|fs.ModeSticky); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chown(filepath.Join(theirs, "runtimes"), 12345, 12345); err != nil {
			t.Fatal(err)
		}
		if _, err := makeWattPIDDir(filepath.Join(theirs, "runtimes"), 46); err == nil || !strings.Contains(err.Error(), "is owned by uid 12345") {
			t.Errorf("another user's shared directory: %v", err)
		}
	}
}

// TestWattRoutes: the answers wattpm reads, in Watt's shapes, and Watt's
// error shape with its code for an unknown application.
func TestWattRoutes(t *testing.T) {
	b := newFakeBackend()
	_, sock := startWatt(t, b, WattOptions{Version: "1.2.3", Name: "proj", Production: true})
	resp, body := rawRequest(t, sock, http.MethodGet, "/api/v1/metadata")
	if resp.StatusCode != 200 || body["pid"] != float64(os.Getpid()) || body["packageName"] != "proj" || body["platformaticVersion"] != "1.2.3" {
		t.Errorf("metadata: %d %v", resp.StatusCode, body)
	}
	resp, body = rawRequest(t, sock, http.MethodGet, "/api/v1/status")
	if resp.StatusCode != 200 || body["status"] != "started" {
		t.Errorf("status: %d %v", resp.StatusCode, body)
	}
	resp, body = rawRequest(t, sock, http.MethodGet, "/api/v1/applications")
	apps, _ := body["applications"].([]any)
	if resp.StatusCode != 200 || body["production"] != true || len(apps) != 2 {
		t.Fatalf("applications: %d %v", resp.StatusCode, body)
	}
	web := apps[0].(map[string]any)
	if web["id"] != "web" || web["workers"] != float64(2) || web["entrypoint"] != true || web["localUrl"] != "http://web.plt.local" || web["status"] != "started" {
		t.Errorf("web: %v", web)
	}
	// Under dev, as Watt: no worker count (wattpm's table has no column).
	s, dev := startWatt(t, b, WattOptions{Version: "1.2.3", Socket: filepath.Join(shortTemp(t), "dev.sock")})
	defer s.Close()
	_, body = rawRequest(t, dev, http.MethodGet, "/api/v1/applications/web")
	if _, ok := body["workers"]; ok || body["production"] != nil {
		t.Errorf("dev application: %v", body)
	}
	// An unknown application is Watt's 500 with its code, on every route
	// that names one; the proxy's path is matched as sent, not redirected.
	for _, path := range []string{"/api/v1/applications/nope", "/api/v1/applications/nope/config", "/api/v1/applications/nope/proxy/a//b/../c"} {
		resp, body = rawRequest(t, sock, http.MethodGet, path)
		if resp.StatusCode != 500 || body["code"] != "PLT_RUNTIME_APPLICATION_NOT_FOUND" || body["statusCode"] != float64(500) ||
			body["error"] != "Internal Server Error" || !strings.Contains(body["message"].(string), `"nope" (known apps: api, web)`) {
			t.Errorf("unknown app, %s: %d %v", path, resp.StatusCode, body)
		}
	}
	resp, body = rawRequest(t, sock, http.MethodGet, "/api/v1/applications/web/proxy")
	if resp.StatusCode != 404 || body["statusCode"] != float64(404) {
		t.Errorf("proxy without a path: %d %v", resp.StatusCode, body)
	}
	resp, body = rawRequest(t, sock, http.MethodPost, "/api/v1/applications/web/stop")
	if resp.StatusCode != 501 || !strings.Contains(body["message"].(string), "wattd ctl scale") {
		t.Errorf("stop one app: %d %v", resp.StatusCode, body)
	}
	resp, body = rawRequest(t, sock, http.MethodGet, "/api/v1/metrics")
	if resp.StatusCode != 501 || body["message"] != "Metrics are disabled." {
		t.Errorf("metrics off: %d %v", resp.StatusCode, body)
	}
	resp, body = rawRequest(t, sock, http.MethodGet, "/api/v1/stop")
	if resp.StatusCode != 405 || body["statusCode"] != float64(405) {
		t.Errorf("GET stop: %d %v", resp.StatusCode, body)
	}
	resp, _ = rawRequest(t, sock, http.MethodPost, "/api/v1/restart")
	if resp.StatusCode != 200 || strings.Join(b.restarts, ",") != "web,api" {
		t.Errorf("restart: %d, restarted %v", resp.StatusCode, b.restarts)
	}
}

// TestDiagNamesMatchWhatClientsTake: every name diagName gives is one
// DiagFileName takes, and the names of other files are not.
func TestDiagNamesMatchWhatClientsTake(t *testing.T) {
	at := time.Date(2026, 12, 7, 4, 10, 0, 0, time.UTC)
	for _, n := range []string{
		diagName("heap", "api", 0, at, "heapsnapshot"), diagName("cpu", "web-2", 12, at, "pb.gz"),
		diagName("heap", "web", 1, at, "heapprofile"), diagName("cpu", "web", 1, at, "cpuprofile"),
	} {
		if !DiagFileName.MatchString(n) {
			t.Errorf("%q is not taken", n)
		}
	}
	for _, n := range []string{".bashrc", "heap-api-0.heapsnapshot", "../heap-api-0-2026-12-07T04-10-00Z.heapsnapshot", "cpu-api-0-2026-12-07T04-10-00Z.sh"} {
		if DiagFileName.MatchString(n) {
			t.Errorf("%q is taken", n)
		}
	}
}
