package main_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// shellEnv puts the wattd under test on PATH as "wattd", as an install
// does, and points ctl at the daemon's runtime directory.
func shellEnv(t *testing.T, runDir string) []string {
	t.Helper()
	bin := t.TempDir()
	if err := os.Symlink(wattdBin, filepath.Join(bin, "wattd")); err != nil {
		t.Fatal(err)
	}
	return append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "WATTD_RUNTIME_DIR="+runDir)
}

func completions(t *testing.T, env []string, dir, shell, script string) []string {
	t.Helper()
	cmd := exec.Command(shell, "-c", script)
	cmd.Env, cmd.Dir = env, dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", shell, err, out)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if c, _, _ := strings.Cut(line, "\t"); c != "" { // fish: candidate<TAB>description
			got = append(got, c)
		}
	}
	return got
}

func wantAll(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("%s: completions %q lack %q", what, got, w)
		}
	}
}

// TestCompletion loads each shell's script in that shell and completes
// subcommands, flags and, with a runtime running, its app names.
func TestCompletion(t *testing.T) {
	integration(t)
	port := freePort(t)
	dir := project(t, map[string]any{
		"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
		"entrypoint":   "web",
		"applications": []any{map[string]any{"id": "web", "path": fixture("apps/plain")}, map[string]any{"id": "api", "path": fixture("apps/plain")}},
	})
	d := startWattd(t, dir, port, startOpts{})
	d.waitReady("web", 30*time.Second)
	env := shellEnv(t, d.runDir)

	t.Run("bash", func(t *testing.T) {
		complete := func(words ...string) []string {
			quoted := make([]string, len(words))
			for i, w := range words {
				quoted[i] = "'" + w + "'"
			}
			script := "source <(wattd completion bash) && complete -p wattd >/dev/null && " +
				"COMP_WORDS=(" + strings.Join(quoted, " ") + ") COMP_CWORD=" + strconv.Itoa(len(words)-1) +
				" && { _wattd_complete; printf '%s\\n' \"${COMPREPLY[@]}\"; }"
			return completions(t, env, dir, "bash", script)
		}
		if got := complete("wattd", "st"); !slices.Equal(got, []string{"start"}) {
			t.Errorf("wattd st<TAB> = %q, want start", got)
		}
		wantAll(t, "wattd <TAB>", complete("wattd", ""), "start", "dev", "ctl", "completion", "version")
		wantAll(t, "wattd ctl <TAB>", complete("wattd", "ctl", ""), "ps", "status", "restart", "stop")
		wantAll(t, "wattd start --<TAB>", complete("wattd", "start", "--"), "--config", "--dir")
		wantAll(t, "wattd ctl restart <TAB>", complete("wattd", "ctl", "restart", ""), "web", "api")
		wantAll(t, "wattd ctl metrics --j<TAB>", complete("wattd", "ctl", "metrics", "--j"), "--json")
		wantAll(t, "wattd ctl restart web --t<TAB>", complete("wattd", "ctl", "restart", "web", "--t"), "--timeout")
		wantAll(t, "wattd completion <TAB>", complete("wattd", "completion", ""), "bash", "zsh", "fish")
	})

	t.Run("zsh", func(t *testing.T) {
		if _, err := exec.LookPath("zsh"); err != nil {
			t.Skip("zsh is not installed")
		}
		// compadd and compdef exist only inside zsh's completion system;
		// these stand-ins print what the script offers.
		complete := func(words ...string) []string {
			quoted := make([]string, len(words))
			for i, w := range words {
				quoted[i] = "'" + w + "'"
			}
			script := "compdef() { :; }; compadd() { shift; print -l -- ${(P)1}; }; _files() { :; }; " +
				"source <(wattd completion zsh) && words=(" + strings.Join(quoted, " ") + ") CURRENT=" + strconv.Itoa(len(words)) +
				" && { _wattd_complete; true; }"
			return completions(t, env, dir, "zsh", script)
		}
		wantAll(t, "wattd <TAB>", complete("wattd", ""), "start", "ctl")
		wantAll(t, "wattd ctl <TAB>", complete("wattd", "ctl", ""), "ps", "restart")
		wantAll(t, "wattd start --<TAB>", complete("wattd", "start", "--"), "--config")
		wantAll(t, "wattd ctl restart <TAB>", complete("wattd", "ctl", "restart", ""), "web", "api")
		wantAll(t, "wattd ctl metrics --j<TAB>", complete("wattd", "ctl", "metrics", "--j"), "--json")
		wantAll(t, "wattd ctl restart web --t<TAB>", complete("wattd", "ctl", "restart", "web", "--t"), "--timeout")
	})

	t.Run("fish", func(t *testing.T) {
		if _, err := exec.LookPath("fish"); err != nil {
			t.Skip("fish is not installed")
		}
		complete := func(line string) []string {
			return completions(t, env, dir, "fish", "wattd completion fish | source; complete -C '"+line+"'")
		}
		if got := complete("wattd ct"); !slices.Equal(got, []string{"ctl"}) {
			t.Errorf("wattd ct<TAB> = %q, want ctl", got)
		}
		wantAll(t, "wattd ctl <TAB>", complete("wattd ctl "), "ps", "restart")
		wantAll(t, "wattd start --<TAB>", complete("wattd start --"), "--config")
		wantAll(t, "wattd ctl restart <TAB>", complete("wattd ctl restart "), "web", "api")
	})
}

func TestCompletionUnknownShell(t *testing.T) {
	integration(t)
	out, err := exec.Command(wattdBin, "completion", "powershell").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "bash|zsh|fish") {
		t.Fatalf("wattd completion powershell: %v\n%s", err, out)
	}
}
