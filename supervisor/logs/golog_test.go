package logs

import (
	"bytes"
	"log"
	"log/slog"
	"testing"

	"go.uber.org/zap/zapcore"
)

// TestGoLogLinesOnStderr: what Go's standard logger and slog's default
// handler write (on stderr, where they write) is logged at its own level,
// info for a plain log line, without the logger's time; other stderr lines
// stay errors. The lines are made by the real packages.
func TestGoLogLinesOnStderr(t *testing.T) {
	var buf bytes.Buffer
	std := log.New(&buf, "", log.LstdFlags)
	std.Printf("listening on :8080")
	micro := log.New(&buf, "", log.LstdFlags|log.Lmicroseconds|log.Lshortfile)
	micro.Printf("with the file")
	prevOut, prevFlags := log.Writer(), log.Flags()
	log.SetOutput(&buf)
	log.SetFlags(log.LstdFlags)
	defer func() { log.SetOutput(prevOut); log.SetFlags(prevFlags) }()
	slog.SetLogLoggerLevel(slog.LevelDebug)
	defer slog.SetLogLoggerLevel(slog.LevelInfo)
	slog.Info("served", "path", "/", "ms", 3)
	slog.Warn("slow")
	slog.Error("failed", "err", "boom")
	slog.Debug("detail")
	slog.Log(t.Context(), slog.LevelError+4, "worse")
	std.Printf("INFOrmal words stay")
	std.Printf("a message\n  on two lines")
	buf.WriteString("2026/12/06 08:17:18 [error] 7#7: *1 open() \"/x\" failed (2: No such file or directory)\n") // nginx
	buf.WriteString("2026/12/06 08:17:18 [notice] 7#7: start worker processes\n")
	std.Printf("[WARN] disk almost full")
	std.Printf("[sic] not a level")

	// One read: each of log's lines is an entry of its own (the pipe
	// may deliver a burst of them together), and a line of log's message
	// without the time stays with it.
	out := relay(t, "stderr", buf.String())
	// Other lines keep stderr's level.
	out = append(out, relayWrites(t, "stderr", "panic: runtime error\n", "2024/01/02 03:04:05.12 odd time\n", "Error: from node\n")...)
	want := []struct {
		lvl zapcore.Level
		msg string
	}{
		{zapcore.InfoLevel, "listening on :8080"},
		{zapcore.InfoLevel, "golog_test.go:21: with the file"},
		{zapcore.InfoLevel, "served path=/ ms=3"},
		{zapcore.WarnLevel, "slow"},
		{zapcore.ErrorLevel, "failed err=boom"},
		{zapcore.DebugLevel, "detail"},
		{zapcore.ErrorLevel, "worse"},
		{zapcore.InfoLevel, "INFOrmal words stay"},
		{zapcore.InfoLevel, "a message\n  on two lines"},
		{zapcore.ErrorLevel, "7#7: *1 open() \"/x\" failed (2: No such file or directory)"},
		{zapcore.InfoLevel, "7#7: start worker processes"},
		{zapcore.WarnLevel, "disk almost full"},
		{zapcore.InfoLevel, "[sic] not a level"},
		{zapcore.ErrorLevel, "panic: runtime error"},
		{zapcore.ErrorLevel, "2024/01/02 03:04:05.12 odd time"},
		{zapcore.ErrorLevel, "Error: from node"},
	}
	var got []string
	for _, e := range out {
		got = append(got, e.Level.String()+" "+e.Message)
	}
	if len(out) != len(want) {
		t.Fatalf("got %d entries, want %d:\n%q", len(out), len(want), got)
	}
	for i, w := range want {
		if out[i].Level != w.lvl || out[i].Message != w.msg || out[i].ContextMap()["stream"] != "stderr" {
			t.Errorf("entry %d: %v %q, want %v %q", i, out[i].Level, out[i].Message, w.lvl, w.msg)
		}
	}
}

// TestSlogJSONLines: slog's JSON handler writes records wattd reads as
// pino's: the level by its name, the time, the members as fields.
func TestSlogJSONLines(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l.Warn("slow", "ms", 1200)
	l.Debug("detail", "id", 7)
	out := relay(t, "stderr", buf.String())
	if len(out) != 2 {
		t.Fatalf("got %d entries, want 2: %+v", len(out), out)
	}
	if e := out[0]; e.Level != zapcore.WarnLevel || e.Message != "slow" || e.ContextMap()["ms"] == nil || e.Time.IsZero() {
		t.Errorf("slog's warning: %v %q %v", e.Level, e.Message, e.ContextMap())
	}
	if e := out[1]; e.Level != zapcore.DebugLevel || e.Message != "detail" {
		t.Errorf("slog's debug line: %v %q", e.Level, e.Message)
	}
}
