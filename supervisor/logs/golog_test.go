package logs

import (
	"bytes"
	"fmt"
	"log"
	"log/slog"
	"runtime"
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
	_, _, microLine, _ := runtime.Caller(0)
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
		{zapcore.InfoLevel, fmt.Sprintf("golog_test.go:%d: with the file", microLine+1)},
		{zapcore.InfoLevel, "served path=/ ms=3"},
		{zapcore.WarnLevel, "slow"},
		{zapcore.ErrorLevel, "failed err=boom"},
		{zapcore.DebugLevel, "detail"},
		{zapcore.ErrorLevel, "worse"},
		{zapcore.InfoLevel, "INFOrmal words stay"},
		{zapcore.InfoLevel, "a message\n  on two lines"},
		{zapcore.ErrorLevel, "[error] 7#7: *1 open() \"/x\" failed (2: No such file or directory)"},
		{zapcore.InfoLevel, "[notice] 7#7: start worker processes"},
		{zapcore.WarnLevel, "[WARN] disk almost full"},
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

// TestGoLogLinesMarkedAsErrors: a line of Go's standard logger whose
// message marks itself an error or a warning, as programs using log do,
// keeps that level: a logger level of warn still shows it. The message is
// logged as written. The lines are made by the real package.
func TestGoLogLinesMarkedAsErrors(t *testing.T) {
	var buf bytes.Buffer
	std := log.New(&buf, "", log.LstdFlags)
	std.Printf("ERROR: cannot reach the cache")
	std.Printf("[ERR] agent: failed to sync")
	std.Printf("[WARN] agent: slow sync")
	std.Printf("error: open /data: permission denied")
	std.Printf("warning: deprecated flag")
	std.Printf("Errors seen: 0")
	std.Printf("[INFO] agent: synced")
	log.New(&buf, "ERROR: ", log.LstdFlags|log.Lmsgprefix).Printf("with a prefix")
	_, _, line, _ := runtime.Caller(0)
	log.New(&buf, "", log.LstdFlags|log.Lshortfile).Printf("FATAL: database connection lost")
	want := []struct {
		lvl zapcore.Level
		msg string
	}{
		{zapcore.ErrorLevel, "ERROR: cannot reach the cache"},
		{zapcore.ErrorLevel, "[ERR] agent: failed to sync"},
		{zapcore.WarnLevel, "[WARN] agent: slow sync"},
		{zapcore.ErrorLevel, "error: open /data: permission denied"},
		{zapcore.WarnLevel, "warning: deprecated flag"},
		{zapcore.InfoLevel, "Errors seen: 0"},
		{zapcore.InfoLevel, "[INFO] agent: synced"},
		{zapcore.ErrorLevel, "ERROR: with a prefix"},
		{zapcore.ErrorLevel, fmt.Sprintf("golog_test.go:%d: FATAL: database connection lost", line+1)},
	}
	out := relay(t, "stderr", buf.String())
	if len(out) != len(want) {
		t.Fatalf("got %d entries, want %d: %+v", len(out), len(want), out)
	}
	for i, w := range want {
		if out[i].Level != w.lvl || out[i].Message != w.msg {
			t.Errorf("entry %d: %v %q, want %v %q", i, out[i].Level, out[i].Message, w.lvl, w.msg)
		}
	}

	// nginx's error log (error_log /dev/stderr in a container) starts
	// with the same time, its level in brackets.
	out = relayWrites(t, "stderr",
		"2024/01/02 03:04:05 [error] 7#7: *1 connect() failed (111: Connection refused) while connecting to upstream\n",
		"2024/01/02 03:04:05 [emerg] 7#7: bind() to 0.0.0.0:80 failed (98: Address in use)\n",
		"2024/01/02 03:04:05 [warn] 7#7: the \"user\" directive makes sense only if the master process runs with super-user privileges\n",
		"2024/01/02 03:04:05 [notice] 7#7: start worker processes\n")
	for i, lvl := range []zapcore.Level{zapcore.ErrorLevel, zapcore.FatalLevel, zapcore.WarnLevel, zapcore.InfoLevel} {
		if i >= len(out) || out[i].Level != lvl {
			t.Errorf("nginx line %d: %+v, want %v", i, out, lvl)
		}
	}
}

// TestGoLogLineThenPanicReport: a Go runtime report (log.Panic prints its
// message just before it) or an error printed right after a line of Go's
// standard logger, in the same read, is an error entry of its own, not
// part of the logger's entry at info.
func TestGoLogLineThenPanicReport(t *testing.T) {
	var buf bytes.Buffer
	std := log.New(&buf, "", log.LstdFlags)
	func() {
		defer func() { _ = recover() }()
		std.Panic("boom")
	}()
	buf.WriteString("panic: boom\n\ngoroutine 1 [running]:\nlog.(*Logger).Panic(0xc000010030, {0xc00006ef20, 0x1, 0x1})\n\t/usr/local/go/src/log/log.go:303 +0x65\nmain.main()\n\t/app/main.go:9 +0x3c\n")
	std.Printf("handling /orders")
	buf.WriteString("fatal error: concurrent map writes\n\ngoroutine 7 [running]:\nmain.handle()\n\t/app/main.go:20 +0x1d\n")
	std.Printf("starting")
	buf.WriteString("Error: unknown flag: --prot\n")
	want := []struct {
		lvl  zapcore.Level
		head string
	}{
		{zapcore.InfoLevel, "boom"},
		{zapcore.ErrorLevel, "panic: boom\n\ngoroutine 1 [running]:"},
		{zapcore.InfoLevel, "handling /orders"},
		{zapcore.ErrorLevel, "fatal error: concurrent map writes\n"},
		{zapcore.InfoLevel, "starting"},
		{zapcore.ErrorLevel, "Error: unknown flag: --prot"},
	}
	out := relay(t, "stderr", buf.String())
	if len(out) != len(want) {
		var got []string
		for _, e := range out {
			got = append(got, e.Level.String()+" "+e.Message)
		}
		t.Fatalf("got %d entries, want %d:\n%q", len(out), len(want), got)
	}
	for i, w := range want {
		if out[i].Level != w.lvl || !bytes.HasPrefix([]byte(out[i].Message), []byte(w.head)) {
			t.Errorf("entry %d: %v %q, want %v %q…", i, out[i].Level, out[i].Message, w.lvl, w.head)
		}
	}
}

// TestGoLogLinesWithAPrefix: log.New's prefix without Lmsgprefix comes
// before the time, as in the logger-per-level pattern ("WARNING: " on
// stderr): the line is still one of Go's logger, at the level its prefix
// marks (or info), and its message keeps the prefix. The lines are made
// by the real package.
func TestGoLogLinesWithAPrefix(t *testing.T) {
	var buf bytes.Buffer
	log.New(&buf, "INFO: ", log.LstdFlags).Printf("started")
	log.New(&buf, "WARNING: ", log.LstdFlags|log.Lshortfile).Printf("disk almost full")
	log.New(&buf, "ERROR: ", log.LstdFlags|log.Lmicroseconds).Printf("cannot reach the cache")
	log.New(&buf, "[api] ", log.LstdFlags).Printf("listening")
	log.New(&buf, "[api] ", log.LstdFlags).Printf("ERROR cannot bind")
	log.New(&buf, "app: ", log.LstdFlags).Printf("WARN slow")
	_, _, line, _ := runtime.Caller(0)
	want := []struct {
		lvl zapcore.Level
		msg string
	}{
		{zapcore.InfoLevel, "INFO: started"},
		{zapcore.WarnLevel, fmt.Sprintf("WARNING: golog_test.go:%d: disk almost full", line-5)},
		{zapcore.ErrorLevel, "ERROR: cannot reach the cache"},
		{zapcore.InfoLevel, "[api] listening"},
		{zapcore.ErrorLevel, "[api] cannot bind"},
		{zapcore.WarnLevel, "app: slow"},
	}
	out := relay(t, "stderr", buf.String())
	// A time further on in a line of other words is not Go's logger's.
	out = append(out, relayWrites(t, "stderr", "request failed at 2024/01/02 03:04:05 upstream\n", "12024/01/02 03:04:05 x\n")...)
	want = append(want, struct {
		lvl zapcore.Level
		msg string
	}{zapcore.ErrorLevel, "request failed at 2024/01/02 03:04:05 upstream"}, struct {
		lvl zapcore.Level
		msg string
	}{zapcore.ErrorLevel, "12024/01/02 03:04:05 x"})
	if len(out) != len(want) {
		t.Fatalf("got %d entries, want %d: %+v", len(out), len(want), out)
	}
	for i, w := range want {
		if out[i].Level != w.lvl || out[i].Message != w.msg {
			t.Errorf("entry %d: %v %q, want %v %q", i, out[i].Level, out[i].Message, w.lvl, w.msg)
		}
	}
}
