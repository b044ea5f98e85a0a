package logs

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

type redactCase struct {
	Paths  []string        `json:"paths"`
	Censor *string         `json:"censor"`
	Obj    json.RawMessage `json:"obj"`
}

func (c redactCase) censor() string {
	if c.Censor == nil {
		return DefaultCensor
	}
	return *c.Censor
}

// pinoRedacted runs testdata/redact-cases.json through real pino (the
// copy the fastify fixture installs) and returns, per case, the members of
// pino's line besides its envelope.
func pinoRedacted(t *testing.T) ([]redactCase, []map[string]any) {
	t.Helper()
	cases, err := os.ReadFile(filepath.Join("testdata", "redact-cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rc []redactCase
	if err := json.Unmarshal(cases, &rc); err != nil {
		t.Fatal(err)
	}
	pino, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "apps", "fastify", "node_modules", "pino"))
	if _, err := os.Stat(pino); err != nil {
		t.Skipf("pino is not installed (make deps): %v", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH")
	}
	casesPath, _ := filepath.Abs(filepath.Join("testdata", "redact-cases.json"))
	out, err := exec.Command(node, filepath.Join("testdata", "pinoredact.cjs"), pino, casesPath).Output()
	if err != nil {
		t.Fatalf("pinoredact.cjs: %v", err)
	}
	var got struct{ Pino []map[string]any }
	if err := json.Unmarshal(out, &got); err != nil || len(got.Pino) != len(rc) {
		t.Fatalf("pino output %q: %v", out, err)
	}
	return rc, got.Pino
}

// members decodes one line of wattd's JSON output and drops the envelope.
func members(t *testing.T, line string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("not JSON: %q", line)
	}
	for _, k := range []string{"level", "time", "pid", "hostname", "msg", "name"} {
		delete(m, k)
	}
	return m
}

// TestRedactMatchesPino: the paths of every case mask what real pino masks
// (same members, same censor, nothing added), in a worker's structured
// line relayed by wattd and in wattd's own entries.
func TestRedactMatchesPino(t *testing.T) {
	cases, want := pinoRedacted(t)
	for i, c := range cases {
		r, err := NewRedactor(c.Paths, c.censor())
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		var buf bytes.Buffer
		logger, _, err := newLogger(Setup{Level: "info", Redact: r}, zapcore.AddSync(&buf), false, func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		// As a worker's pino line.
		s := NewSink(logger, Options{})
		s.Follow(strings.NewReader(`{"level":30,"msg":"m",`+strings.TrimPrefix(string(c.Obj), "{")+"\n"), "stdout")
		s.Close()
		relayed := members(t, strings.TrimSpace(buf.String()))
		if !reflect.DeepEqual(relayed, want[i]) {
			t.Errorf("case %d %q, worker line:\n got %v\nwant %v", i, c.Paths, relayed, want[i])
		}
		// As wattd's own entry, one field per member.
		buf.Reset()
		var obj map[string]any
		_ = json.Unmarshal(c.Obj, &obj)
		var fields []zap.Field
		for k, v := range obj {
			fields = append(fields, zap.Any(k, v))
		}
		logger.Info("m", fields...)
		own := members(t, strings.TrimSpace(buf.String()))
		if !reflect.DeepEqual(own, want[i]) {
			t.Errorf("case %d %q, wattd entry:\n got %v\nwant %v", i, c.Paths, own, want[i])
		}
	}
}

// TestRedactDoesNotChangeTheCallersValues: wattd's own fields are masked
// in the entry, not in the maps the caller still holds.
func TestRedactDoesNotChangeTheCallersValues(t *testing.T) {
	r, err := NewRedactor([]string{"cfg.password"}, "x")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	logger, _, _ := newLogger(Setup{Redact: r}, zapcore.AddSync(&buf), false, func(string) string { return "" })
	cfg := map[string]any{"password": "p", "user": "u"}
	logger.With(zap.Any("cfg", cfg)).Info("m")
	if cfg["password"] != "p" {
		t.Errorf("caller's map changed: %v", cfg)
	}
	if got := members(t, strings.TrimSpace(buf.String())); !reflect.DeepEqual(got["cfg"], map[string]any{"password": "x", "user": "u"}) {
		t.Errorf("entry %v", got)
	}
}

func TestRedactPathSyntax(t *testing.T) {
	good := map[string][]string{
		`a`:            {"a"},
		`a.b.c`:        {"a", "b", "c"},
		`a["b-c"].d`:   {"a", "b-c", "d"},
		`a['x.y']`:     {"a", "x.y"},
		`a[*].b`:       {"a", "*", "b"},
		`*.b`:          {"*", "b"},
		`a[0]`:         {"a", "0"},
		`["top key"]`:  {"top key"},
		`a.*`:          {"a", "*"},
		`req.headers`:  {"req", "headers"},
		`a[1][2]`:      {"a", "1", "2"},
		`a["]"]`:       {"a", "]"},
		`x["y"].z[*]`:  {"x", "y", "z", "*"},
		`deep.*.k.*.v`: {"deep", "*", "k", "*", "v"},
	}
	for p, want := range good {
		got, err := ParseRedactPath(p)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%q: %q, %v; want %q", p, got, err, want)
		}
	}
	for _, p := range []string{``, `a.`, `.a`, `a..b`, `a[`, `a[]`, `a["b']`, `a["b"c]`, `a["b`} {
		if got, err := ParseRedactPath(p); err == nil {
			t.Errorf("%q: parsed as %q, want an error", p, got)
		}
	}
	if _, err := NewRedactor([]string{"ok", "a["}, "x"); err == nil || !strings.Contains(err.Error(), `redact path 1 "a["`) {
		t.Errorf("error %v should name the path and its index", err)
	}
}
