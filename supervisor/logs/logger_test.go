package logs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func plainEnv(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	t.Setenv(FormatEnv, "")
}

func logFile(t *testing.T) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "wattd.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func readLog(t *testing.T, f *os.File) string {
	t.Helper()
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestNewWritesJSONWhenNotATerminal(t *testing.T) {
	plainEnv(t)
	f := logFile(t)
	logger, atom, err := New("info", f)
	if err != nil {
		t.Fatal(err)
	}
	if atom.Level() != zapcore.InfoLevel {
		t.Errorf("level = %v", atom.Level())
	}
	named := logger.Named("supervisor")
	named.Info("hello", zap.String("app", "api"), zap.Int("worker", 1))
	named.Debug("hidden")
	named.Error("bad")
	for range 1000 {
		named.Info("repeated")
	}
	if err := logger.Sync(); err != nil {
		t.Fatal(err)
	}

	lines := strings.Split(strings.TrimSpace(readLog(t, f)), "\n")
	if len(lines) != 1002 {
		t.Fatalf("got %d lines, want 1002 (no sampling, debug filtered)", len(lines))
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatalf("not JSON: %q: %v", lines[0], err)
	}
	// pino's line, as Watt prints it: numeric level, epoch milliseconds,
	// the app's id as name, pid and hostname on every line.
	host, _ := os.Hostname()
	want := map[string]any{"level": 30.0, "name": "api", "msg": "hello", "worker": 1.0, "pid": float64(os.Getpid()), "hostname": host}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("%s = %#v, want %#v", k, first[k], v)
		}
	}
	ms, ok := first["time"].(float64)
	if !ok || ms != float64(int64(ms)) {
		t.Fatalf("time = %#v, want integer epoch milliseconds", first["time"])
	}
	if d := time.Since(time.UnixMilli(int64(ms))); d < 0 || d > time.Minute {
		t.Errorf("time %v is off by %v", ms, d)
	}
	for _, k := range []string{"ts", "caller", "stacktrace", "app", "logger"} {
		if _, ok := first[k]; ok {
			t.Errorf("unexpected key %s", k)
		}
	}
	var second map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil || second["level"] != 50.0 || second["name"] != "supervisor" {
		t.Errorf("second line %q: %v", lines[1], err)
	}
	if _, ok := second["stacktrace"]; ok {
		t.Error("error entries should not carry wattd stack traces")
	}
}

func TestLevels(t *testing.T) {
	plainEnv(t)
	cases := []struct {
		name    string
		lowest  zapcore.Level // lowest enabled level
		nothing bool
	}{
		{"trace", TraceLevel, false},
		{"debug", zapcore.DebugLevel, false},
		{"", zapcore.InfoLevel, false},
		{"info", zapcore.InfoLevel, false},
		{"WARN", zapcore.WarnLevel, false},
		{"error", zapcore.ErrorLevel, false},
		{"fatal", zapcore.FatalLevel, false},
		{"silent", 0, true},
	}
	all := []zapcore.Level{TraceLevel, zapcore.DebugLevel, zapcore.InfoLevel, zapcore.WarnLevel, zapcore.ErrorLevel, zapcore.DPanicLevel, zapcore.PanicLevel, zapcore.FatalLevel}
	for _, c := range cases {
		f := logFile(t)
		logger, atom, err := New(c.name, f)
		if err != nil {
			t.Fatalf("%q: %v", c.name, err)
		}
		for _, l := range all {
			want := !c.nothing && l >= c.lowest
			if atom.Enabled(l) != want || logger.Core().Enabled(l) != want {
				t.Errorf("%q: %v enabled = %v, want %v", c.name, l, atom.Enabled(l), want)
			}
		}
		if c.nothing {
			logger.Error("must not appear")
			_ = logger.Sync()
			if got := readLog(t, f); got != "" {
				t.Errorf("silent logger wrote %q", got)
			}
			// The level stays adjustable at runtime.
			atom.SetLevel(zapcore.InfoLevel)
			logger.Info("now visible")
			_ = logger.Sync()
			if !strings.Contains(readLog(t, f), "now visible") {
				t.Error("raising a silent logger's level had no effect")
			}
		}
	}
}

func TestBadSettings(t *testing.T) {
	plainEnv(t)
	if _, _, err := New("loud", logFile(t)); err == nil || !strings.Contains(err.Error(), `"loud"`) {
		t.Errorf("unknown level: err = %v", err)
	}
	t.Setenv(FormatEnv, "xml")
	if _, _, err := New("info", logFile(t)); err == nil || !strings.Contains(err.Error(), FormatEnv) {
		t.Errorf("unknown format: err = %v", err)
	}
	if _, _, err := New("info", nil); err == nil {
		t.Error("nil file accepted")
	}
}

var consoleLine = regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{3}\t`)

func TestFormatOverride(t *testing.T) {
	plainEnv(t)
	t.Setenv(FormatEnv, "console")
	f := logFile(t)
	logger, _, err := New("info", f)
	if err != nil {
		t.Fatal(err)
	}
	logger.Named("admin").Info("hello", zap.String("k", "v"))
	_ = logger.Sync()
	got := readLog(t, f)
	if !consoleLine.MatchString(got) || !strings.Contains(got, "\tINFO\tadmin\thello\t{\"k\": \"v\"}") {
		t.Errorf("console output %q", got)
	}
	if strings.Contains(got, "\x1b[") {
		t.Errorf("colour written to a file: %q", got)
	}
}

// render logs one entry through newLogger as if out were or were not a
// terminal.
func render(t *testing.T, terminal bool, env map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	logger, _, err := newLogger(Setup{Level: "info"}, zapcore.AddSync(&buf), terminal, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	logger.Named("supervisor").Warn("careful", zap.Int("n", 1))
	return buf.String()
}

func TestTerminalOutput(t *testing.T) {
	got := render(t, true, nil)
	if !consoleLine.MatchString(got) || !strings.Contains(got, "\x1b[33mWARN\x1b[0m\tsupervisor\tcareful\t{\"n\": 1}") {
		t.Errorf("terminal output %q", got)
	}

	got = render(t, true, map[string]string{"NO_COLOR": "1"})
	if strings.Contains(got, "\x1b[") || !consoleLine.MatchString(got) {
		t.Errorf("NO_COLOR terminal output %q, want uncoloured console", got)
	}

	got = render(t, true, map[string]string{"NO_COLOR": "1", FormatEnv: "console"})
	if strings.Contains(got, "\x1b[") || !consoleLine.MatchString(got) {
		t.Errorf("NO_COLOR console output %q, want uncoloured console", got)
	}

	got = render(t, true, map[string]string{FormatEnv: "JSON"})
	if !json.Valid(bytes.TrimSpace([]byte(got))) {
		t.Errorf("forced JSON on a terminal: %q", got)
	}
}

// TestWorkerTraceAndFatalAreNamed: a worker's trace and fatal entries keep
// their pino levels in wattd's output, and a fatal one does not end wattd.
func TestWorkerTraceAndFatalAreNamed(t *testing.T) {
	plainEnv(t)
	f := logFile(t)
	logger, _, err := New("trace", f)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSink(logger, Options{})
	s.Follow(strings.NewReader(`{"level":10,"msg":"t"}`+"\n"+`{"level":"fatal","msg":"f"}`+"\n"), "stdout")
	s.Close()
	lines := strings.Split(strings.TrimSpace(readLog(t, f)), "\n")
	var levels []string
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		levels = append(levels, fmt.Sprint(m["level"]))
	}
	if strings.Join(levels, ",") != "10,60" {
		t.Fatalf("levels %v", levels)
	}
}

// TestPinoFormatOfWorkerLines: in wattd's JSON output a worker's plain
// line is Watt's: the app as name, the worker, caller STDOUT or STDERR,
// the worker process's pid; a structured line keeps its members and its
// own time, and gets no caller.
func TestPinoFormatOfWorkerLines(t *testing.T) {
	plainEnv(t)
	f := logFile(t)
	logger, _, err := New("info", f)
	if err != nil {
		t.Fatal(err)
	}
	w := logger.Named("app").With(zap.String("app", "api"), zap.Int("worker", 1), zap.Int("pid", 4242))
	s := NewSink(w, Options{})
	at := time.Now().Add(-time.Second).UnixMilli()
	s.Follow(strings.NewReader(fmt.Sprintf("hello\n{\"level\":40,\"time\":%d,\"pid\":4242,\"hostname\":\"x\",\"msg\":\"rec\",\"reqId\":\"r\"}\n", at)), "stdout")
	s.Follow(strings.NewReader("oops\n"), "stderr")
	s.Close()
	byMsg := map[string]map[string]any{}
	for _, l := range strings.Split(strings.TrimSpace(readLog(t, f)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		byMsg[fmt.Sprint(m["msg"])] = m
	}
	host, _ := os.Hostname()
	want := map[string]map[string]any{
		"hello": {"level": 30.0, "name": "api", "worker": 1.0, "caller": "STDOUT", "pid": 4242.0, "hostname": host},
		"oops":  {"level": 50.0, "name": "api", "worker": 1.0, "caller": "STDERR", "pid": 4242.0, "hostname": host},
		"rec":   {"level": 40.0, "name": "api", "worker": 1.0, "reqId": "r", "pid": 4242.0, "hostname": host, "time": float64(at)},
	}
	for msg, fields := range want {
		got := byMsg[msg]
		for k, v := range fields {
			if got[k] != v {
				t.Errorf("%q: %s = %#v, want %#v", msg, k, got[k], v)
			}
		}
		for _, k := range []string{"app", "stream", "logger"} {
			if _, ok := got[k]; ok {
				t.Errorf("%q: unexpected %s in %v", msg, k, got)
			}
		}
	}
	if _, ok := byMsg["rec"]["caller"]; ok {
		t.Errorf("a structured line got a caller: %v", byMsg["rec"])
	}
}

// TestExportLines: Setup.Export gets every entry the level lets through as
// the pino line the JSON output has, redacted, a worker's relayed lines
// included, and in the console format too.
func TestExportLines(t *testing.T) {
	r, err := NewRedactor([]string{"password"}, DefaultCensor)
	if err != nil {
		t.Fatal(err)
	}
	for _, console := range []bool{false, true} {
		var buf bytes.Buffer
		var lines []string
		env := map[string]string{}
		if console {
			env[FormatEnv] = "console"
		}
		logger, _, err := newLogger(Setup{Level: "info", Redact: r, Export: func(b []byte) { lines = append(lines, string(b)) }},
			zapcore.AddSync(&buf), false, func(k string) string { return env[k] })
		if err != nil {
			t.Fatal(err)
		}
		logger.Named("runtime").Info("ready", zap.String("password", "hunter2"))
		logger.Debug("below the level")
		s := NewSink(logger.Named("app").With(zap.String("app", "api"), zap.Int("worker", 0)), Options{})
		s.Follow(strings.NewReader(`{"level":40,"msg":"slow","traceId":"4bf92f3577b34da6a3ce929d0e0e4736"}`+"\n"), "stdout")
		s.Close()
		if len(lines) != 2 {
			t.Fatalf("console %v: exported %q", console, lines)
		}
		var own, worker map[string]any
		if json.Unmarshal([]byte(lines[0]), &own) != nil || json.Unmarshal([]byte(lines[1]), &worker) != nil {
			t.Fatalf("console %v: not JSON: %q", console, lines)
		}
		if own["msg"] != "ready" || own["name"] != "runtime" || own["password"] != DefaultCensor || strings.HasSuffix(lines[0], "\n") {
			t.Errorf("console %v: own entry %q", console, lines[0])
		}
		if worker["msg"] != "slow" || worker["name"] != "api" || worker["worker"] != float64(0) || worker["level"] != float64(40) || worker["traceId"] != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("console %v: worker line %q", console, lines[1])
		}
		if !console && strings.TrimSpace(buf.String()) != strings.Join(lines, "\n") {
			t.Errorf("the exported lines differ from the output:\n%s\n%s", buf.String(), strings.Join(lines, "\n"))
		}
	}
}

// TestConsoleOutputIsPrintable: in the console format (a terminal's), a
// message of several lines cannot pass for entries of wattd's own (its
// later lines are indented), and control characters and bytes that are
// not UTF-8 reach the terminal escaped, not raw, as in ctl logs.
func TestConsoleOutputIsPrintable(t *testing.T) {
	var buf bytes.Buffer
	logger, _, err := newLogger(Setup{Level: "info"}, zapcore.AddSync(&buf), true, func(k string) string { return map[string]string{"NO_COLOR": "1"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	logger.Named("app").Info("first line\n00:00:00.000\tERROR\truntime\tforged entry")
	logger.Named("app").Info("\x1b[31mRED\x1b[0m \x1b]0;title\x07 cr\rX bad\xff\xfe")
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "    00:00:00.000") {
		t.Errorf("a message of two lines: %q", lines)
	}
	if got := buf.String(); strings.ContainsAny(got, "\x1b\x07\r") || !strings.Contains(got, `\x1b[31mRED\x1b[0m \x1b]0;title\x07 cr\x0dX bad`+"\ufffd\ufffd") {
		t.Errorf("control characters or invalid UTF-8 written raw: %q", got)
	}
}

// TestJournalPriorities: when the output is the stream systemd connected
// to journald (JOURNAL_STREAM names its device and inode), each line
// starts with its syslog priority, which journald keeps as the entry's
// PRIORITY (journalctl -p err finds the errors); to any other output,
// the lines are plain JSON.
func TestJournalPriorities(t *testing.T) {
	plainEnv(t)
	f := logFile(t)
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	for env, want := range map[string][]string{
		fmt.Sprintf("%d:%d", st.Dev, st.Ino):   {"<6>{", "<4>{", "<3>{"},
		fmt.Sprintf("%d:%d", st.Dev, st.Ino+1): {"{", "{", "{"},
		"":                                     {"{", "{", "{"},
	} {
		t.Setenv("JOURNAL_STREAM", env)
		if err := f.Truncate(0); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Seek(0, 0); err != nil {
			t.Fatal(err)
		}
		logger, _, err := New("info", f)
		if err != nil {
			t.Fatal(err)
		}
		logger.Info("up")
		logger.Warn("slow")
		logger.Error("down")
		_ = logger.Sync()
		lines := strings.Split(strings.TrimSpace(readLog(t, f)), "\n")
		if len(lines) != 3 {
			t.Fatalf("JOURNAL_STREAM=%q: %q", env, lines)
		}
		for i, l := range lines {
			if !strings.HasPrefix(l, want[i]) {
				t.Errorf("JOURNAL_STREAM=%q: line %q, want it to start %q", env, l, want[i])
			}
		}
	}
}
