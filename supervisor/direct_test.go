package supervisor

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/wattd/wattd/capabilities"
	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/cgroups"
)

// TestDirectStartOnlyWhereNothingNeedsTheHelper: a program starts as
// itself only when it declares it needs no LISTEN_PID, is given by an
// absolute path, and its cgroup needs no join from inside; everything
// else goes through the exec helper. The direct command carries the
// group's mark and WATTD_PARENT_PID, never the join variable or
// LISTEN_PID; the helper's carries the join.
func TestDirectStartOnlyWhereNothingNeedsTheHelper(t *testing.T) {
	log := zaptest.NewLogger(t)
	fallback, err := cgroups.Open(cgroups.Options{Root: "/proc/wattd-not-writable", Name: "direct-test", Logger: log})
	if err != nil || fallback.Version() != cgroups.Fallback {
		t.Fatalf("fallback manager: %v %v", fallback, err)
	}
	fg, err := fallback.Worker("web", 0, cgroups.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	node := "/usr/bin/node"
	base := spawnSpec{argv: []string{node, "app.js"}, direct: true, log: log, app: "web"}
	for _, c := range []struct {
		name   string
		tweak  func(*spawnSpec)
		direct bool
	}{
		{"no cgroups", func(*spawnSpec) {}, true},
		{"fallback group", func(s *spawnSpec) { s.group = fg }, true},
		{"a program that needs LISTEN_PID", func(s *spawnSpec) { s.direct = false }, false},
		{"a program looked up in PATH", func(s *spawnSpec) { s.argv = []string{"node", "app.js"} }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := base
			c.tweak(&spec)
			f, ok := directStart(spec)
			if f != nil {
				f.Close()
				t.Fatal("a cgroup directory to clone into, with no v2 group")
			}
			if ok != c.direct {
				t.Fatalf("direct = %v, want %v", ok, c.direct)
			}
			cmd, err := workerCommand(spec, ok, nil, nil, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			has := func(prefix string) bool {
				return slices.ContainsFunc(cmd.Env, func(kv string) bool { return strings.HasPrefix(kv, prefix) })
			}
			if ok {
				if cmd.Path != node || !slices.Equal(cmd.Args, spec.argv) {
					t.Errorf("direct command %s %v, want the program itself", cmd.Path, cmd.Args)
				}
				if !has(ipc.EnvParentPID+"=") || has(ipc.EnvListenPID+"=") || has(cgroups.EnvJoin+"=") {
					t.Errorf("direct environment %v: want %s and neither LISTEN_PID nor the join", cmd.Env, ipc.EnvParentPID)
				}
			} else {
				self, _ := capabilities.WattdBinary()
				if cmd.Path != self || len(cmd.Args) < 2 || cmd.Args[1] != ExecHelperArg {
					t.Errorf("helper command %s %v, want wattd as the exec helper", cmd.Path, cmd.Args)
				}
				if has(ipc.EnvParentPID + "=") {
					t.Errorf("helper environment carries %s", ipc.EnvParentPID)
				}
			}
			if spec.group != nil && !has(cgroups.EnvGroup+"=") {
				t.Errorf("environment %v lacks the group's mark", cmd.Env)
			}
		})
	}

	// On v1 the worker must join each hierarchy itself: always the helper.
	if os.Geteuid() != 0 {
		return
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory/cgroup.procs"); err != nil {
		return // not v1
	}
	v1, err := cgroups.Open(cgroups.Options{Name: "direct-test-" + filepath.Base(t.TempDir()), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer v1.Close()
	if v1.Version() != cgroups.V1 {
		return
	}
	g, err := v1.Worker("web", 0, cgroups.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	spec := base
	spec.group = g
	if f, ok := directStart(spec); ok || f != nil {
		t.Fatalf("direct start on v1: %v %v", ok, f)
	}
	cmd, err := workerCommand(spec, false, nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(cmd.Env, func(kv string) bool { return strings.HasPrefix(kv, cgroups.EnvJoin+"=") }) {
		t.Errorf("helper environment %v lacks the join", cmd.Env)
	}
}
