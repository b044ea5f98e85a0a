package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction: its keyword, upper-cased,
// and the rest of its (joined) lines.
type instruction struct {
	line int
	cmd  string
	args string
}

// stage is one FROM and what follows it.
type stage struct {
	from, name string
	ins        []instruction
}

// parseDockerfile reads the repository's Dockerfile: comments dropped,
// continuation lines joined, split into stages.
func parseDockerfile(t *testing.T) []stage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var stages []stage
	var cur strings.Builder
	start := 0
	flush := func() {
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if text == "" {
			return
		}
		cmd, args, _ := strings.Cut(text, " ")
		in := instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			s := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
			return
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile:%d: %s before the first FROM", in.line, in.cmd)
		}
		stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
	}
	for i, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		flush()
	}
	flush()
	return stages
}

// find returns the stage's last instruction cmd (Docker uses the last).
func (s stage) find(cmd string) (instruction, bool) {
	for i := len(s.ins) - 1; i >= 0; i-- {
		if s.ins[i].cmd == cmd {
			return s.ins[i], true
		}
	}
	return instruction{}, false
}

// execForm decodes a JSON-array argument; shell form is an error here,
// since it would put /bin/sh between Docker and the program.
func execForm(t *testing.T, in instruction, args string) []string {
	t.Helper()
	var argv []string
	if err := json.Unmarshal([]byte(args), &argv); err != nil || len(argv) == 0 {
		t.Fatalf("Dockerfile:%d: %s %s is not in exec form (a JSON array): %v", in.line, in.cmd, args, err)
	}
	return argv
}

// TestDockerfile checks what the image promises: a multi-stage build of
// wattd into a Node runtime image, wattd as PID 1 (exec form), a non-root
// user, a HEALTHCHECK through `wattd ctl status`; and a few of hadolint's
// rules (pinned base images, absolute WORKDIR, no sudo, COPY over ADD).
func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("%d stages; want a build stage and a runtime stage", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	if build.name == "" {
		t.Error("the build stage has no name (FROM … AS build)")
	}
	for _, s := range stages {
		if !regexp.MustCompile(`^[^:@]+(:[^:]+|@sha256:[0-9a-f]+)$`).MatchString(s.from) || strings.HasSuffix(s.from, ":latest") {
			t.Errorf("FROM %s: pin the base image's version (hadolint DL3006, DL3007)", s.from)
		}
		for _, in := range s.ins {
			switch {
			case in.cmd == "ADD":
				t.Errorf("Dockerfile:%d: use COPY, not ADD, for files (DL3020)", in.line)
			case in.cmd == "WORKDIR" && !strings.HasPrefix(in.args, "/"):
				t.Errorf("Dockerfile:%d: WORKDIR must be absolute (DL3000)", in.line)
			case in.cmd == "RUN" && regexp.MustCompile(`\bsudo\b`).MatchString(in.args):
				t.Errorf("Dockerfile:%d: no sudo (DL3004)", in.line)
			case in.cmd == "RUN" && strings.Contains(in.args, "apt-get install") && !strings.Contains(in.args, "--no-install-recommends"):
				t.Errorf("Dockerfile:%d: apt-get install --no-install-recommends (DL3015)", in.line)
			}
		}
	}
	if !strings.HasPrefix(final.from, "node:") {
		t.Errorf("runtime stage FROM %s; want a Node image", final.from)
	}
	if run, ok := build.find("RUN"); !ok || !strings.Contains(run.args, "go build") || !strings.Contains(run.args, "./cmd/wattd") {
		t.Errorf("the build stage does not build ./cmd/wattd: %q", run.args)
	} else if tags := makefileTags(t); !strings.Contains(run.args, "-tags "+tags) {
		t.Errorf("the build stage's go build lacks the Makefile's -tags %s: %q", tags, run.args)
	}
	copied := false
	for _, in := range final.ins {
		if in.cmd == "COPY" && strings.Contains(in.args, "--from="+build.name) && strings.HasSuffix(in.args, " /usr/local/bin/wattd") {
			copied = true
		}
	}
	if !copied {
		t.Error("the runtime stage does not copy wattd from the build stage to /usr/local/bin/wattd")
	}
	user, ok := final.find("USER")
	if !ok {
		t.Fatal("no USER: the image would run as root")
	}
	if u, _, _ := strings.Cut(user.args, ":"); u == "root" || u == "0" {
		t.Errorf("Dockerfile:%d: USER %s", user.line, user.args)
	}
	hc, ok := final.find("HEALTHCHECK")
	if !ok {
		t.Fatal("no HEALTHCHECK")
	}
	_, hcCmd, ok := strings.Cut(hc.args, "CMD ")
	if !ok {
		t.Fatalf("Dockerfile:%d: HEALTHCHECK without CMD", hc.line)
	}
	if argv := execForm(t, hc, strings.TrimSpace(hcCmd)); !slices.Equal(argv, []string{"wattd", "ctl", "status"}) {
		t.Errorf("HEALTHCHECK runs %q, want wattd ctl status", argv)
	}
	ep, ok := final.find("ENTRYPOINT")
	if !ok {
		t.Fatal("no ENTRYPOINT")
	}
	if argv := execForm(t, ep, ep.args); argv[0] != "/usr/local/bin/wattd" {
		t.Errorf("ENTRYPOINT %q: wattd must be PID 1", argv)
	}
	if sig, ok := final.find("STOPSIGNAL"); ok && sig.args != "SIGTERM" {
		t.Errorf("STOPSIGNAL %s: wattd stops gracefully on SIGTERM", sig.args)
	}
	// The layout TestPID1InNamespace rebuilds without Docker.
	layout := dockerLayout(t)
	if layout.bin != "/usr/local/bin/wattd" || layout.project != "/app" {
		t.Errorf("layout %+v", layout)
	}
}

// imageLayout is where the image puts wattd and the project, and how it
// starts them.
type imageLayout struct {
	bin, project string
}

// dockerLayout reads the runtime stage's ENTRYPOINT and CMD, which must be
// `wattd start DIR`.
func dockerLayout(t *testing.T) imageLayout {
	t.Helper()
	stages := parseDockerfile(t)
	final := stages[len(stages)-1]
	ep, _ := final.find("ENTRYPOINT")
	cmd, _ := final.find("CMD")
	argv := append(execForm(t, ep, ep.args), execForm(t, cmd, cmd.args)...)
	if len(argv) != 3 || argv[1] != "start" {
		t.Fatalf("the image runs %q, want wattd start DIR", argv)
	}
	return imageLayout{bin: argv[0], project: argv[2]}
}

// makefileTags is the Makefile's TAGS, the build tags of bin/wattd.
func makefileTags(t *testing.T) string {
	data, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^TAGS\s*:=\s*(\S+)\s*$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("the Makefile sets no TAGS")
	}
	return string(m[1])
}
