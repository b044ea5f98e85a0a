package logs

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestOneWriteIsOneEntry: what a worker prints with one write (an error
// with its stack, a message of several lines) is one entry, as in Watt.
func TestOneWriteIsOneEntry(t *testing.T) {
	trace := "Error: boom\n    at Object.<anonymous> (/app/index.js:1:7)\n    at Module._compile (node:internal/modules/cjs/loader:1929:14)\n"
	e := only(t, relayWrites(t, "stderr", trace))
	if e.Level != zapcore.ErrorLevel || e.Message != strings.TrimSuffix(trace, "\n") {
		t.Fatalf("got %v %q", e.Level, e.Message)
	}
	e = only(t, relayWrites(t, "stdout", "first line\nsecond line\n\n"))
	if e.Level != zapcore.InfoLevel || e.Message != "first line\nsecond line" {
		t.Fatalf("got %v %q", e.Level, e.Message)
	}
}

// TestUncaughtExceptionIsOneEntry: Node's report of an uncaught exception
// (source line, caret, blank lines, stack, version) is one entry.
func TestUncaughtExceptionIsOneEntry(t *testing.T) {
	report := "/app/index.js:3\nthrow new Error('boom')\n^\n\nError: boom\n    at Object.<anonymous> (/app/index.js:3:7)\n    at node:internal/main/run_main_module:33:47\n\nNode.js v24.11.0\n"
	e := only(t, relayWrites(t, "stderr", report))
	if !strings.HasPrefix(e.Message, "/app/index.js:3\n") || !strings.HasSuffix(e.Message, "\nNode.js v24.11.0") {
		t.Fatalf("message %q", e.Message)
	}
}

// TestGoPanicIsOneEntry: the Go runtime's report of a panic, which it
// prints with many small writes (head, blank line, goroutine header,
// unindented function lines), is one entry; the next plain line is not
// part of it.
func TestGoPanicIsOneEntry(t *testing.T) {
	writes := []string{"panic: ", "boom", "\n", "\n", "goroutine 1046 [running]:\n",
		"main.main.func2.1()\n", "\t/app/main.go:35 +0x25\n",
		"net/http.(*conn).serve(0xc0001a2000, {0x7f3a20, 0xc000118000})\n", "\t/usr/local/go/src/net/http/server.go:2110 +0x1e\n",
		"created by main.main.func2 in goroutine 1025\n", "\t/app/main.go:35 +0x1a\n"}
	out := relayWrites(t, "stderr", writes...)
	want := strings.TrimSuffix(strings.Join(writes, ""), "\n")
	if len(out) != 1 || out[0].Message != want || out[0].Level != zapcore.ErrorLevel {
		t.Fatalf("got %d entries %q, want one %q", len(out), messages(out), want)
	}
	out = relayWrites(t, "stderr", "fatal error: concurrent map writes\n", "\n", "goroutine 7 [running]:\n", "main.f()\n", "\t/app/main.go:9 +0x1\n", "\n", "goroutine 1 [chan receive]:\n", "main.main()\n", "\t/app/main.go:20 +0x2\n")
	if len(out) != 1 || !strings.HasSuffix(out[0].Message, "main.main()\n\t/app/main.go:20 +0x2") {
		t.Fatalf("fatal error: got %d entries %q", len(out), messages(out))
	}
	// A line that only looks like a function line starts its own entry
	// when no report is open.
	out = relayWrites(t, "stdout", "listening\n", "main.main()\n")
	if len(out) != 2 {
		t.Fatalf("got %d entries %q, want 2", len(out), messages(out))
	}
}

// TestContinuationAcrossWrites: a stack trace or an object printed in
// several writes still makes one entry when its later lines are shaped as
// continuations; the next unindented line starts a new entry.
func TestContinuationAcrossWrites(t *testing.T) {
	out := relayWrites(t, "stderr",
		"Error: boom\n", "    at a (/app/a.js:1:1)\n", "    at b (/app/b.js:2:2)\n",
		"{\n", "  code: 'E_X',\n", "}\n",
		"next message\n")
	want := []string{
		"Error: boom\n    at a (/app/a.js:1:1)\n    at b (/app/b.js:2:2)",
		"{\n  code: 'E_X',\n}",
		"next message",
	}
	if len(out) != len(want) {
		t.Fatalf("got %d entries, want %d: %q", len(out), len(want), messages(out))
	}
	for i, e := range out {
		if e.Message != want[i] {
			t.Errorf("entry %d: %q, want %q", i, e.Message, want[i])
		}
	}
}

// TestJSONLinesAreNotJoined: a JSON record written together with plain
// lines stays a record of its own, in order.
func TestJSONLinesAreNotJoined(t *testing.T) {
	out := relayWrites(t, "stdout", "before\n{\"level\":40,\"msg\":\"json\"}\nafter 1\nafter 2\n")
	got := messages(out)
	want := []string{"before", "json", "after 1\nafter 2"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
	if out[1].Level != zapcore.WarnLevel {
		t.Errorf("record level %v", out[1].Level)
	}
}

// TestEntryIsBounded: lines read together are cut into entries of at most
// maxEntryLines, none lost.
func TestEntryIsBounded(t *testing.T) {
	var b strings.Builder
	for i := range 3*maxEntryLines + 7 {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	out := relayWrites(t, "stdout", b.String())
	total := 0
	for _, e := range out {
		n := strings.Count(e.Message, "\n") + 1
		if n > maxEntryLines {
			t.Fatalf("entry of %d lines", n)
		}
		total += n
	}
	if total != 3*maxEntryLines+7 || len(out) != 4 {
		t.Fatalf("%d lines in %d entries", total, len(out))
	}
}

// TestSingleLineIsNotHeld: a complete line that is not shaped to go on is
// written as soon as the framer takes it; only entries that may go on are
// held for joinWindow.
func TestSingleLineIsNotHeld(t *testing.T) {
	var emitted []string
	f := framer{pending: map[string]*entry{}, emit: func(e *entry) { emitted = append(emitted, e.text()) }}
	now := time.Now()
	if held := f.add(line{at: now, text: "GET / 200", stream: "stdout"}); held || len(emitted) != 1 {
		t.Fatalf("plain line held=%v, emitted %q", held, emitted)
	}
	for _, text := range []string{"Error: boom", "details:", "    at x (/a.js:1:1)"} {
		emitted = nil
		f := framer{pending: map[string]*entry{}, emit: func(e *entry) { emitted = append(emitted, e.text()) }}
		if held := f.add(line{at: now, text: text, stream: "stderr", more: true}); !held || len(emitted) != 0 {
			t.Fatalf("%q with more to read: held=%v, emitted %q", text, held, emitted)
		}
	}
	f = framer{pending: map[string]*entry{}, emit: func(e *entry) { emitted = append(emitted, e.text()) }}
	emitted = nil
	if held := f.add(line{at: now, text: "    at x (/a.js:1:1)", stream: "stderr"}); !held {
		t.Fatal("a stack frame was not held for the rest of its trace")
	}
	if next := f.flushStale(now.Add(joinWindow)); next != 0 || len(emitted) != 1 {
		t.Fatalf("after joinWindow: next %v, emitted %q", next, emitted)
	}
}

// TestGoReportWaitsLonger: the Go runtime's report of a panic still takes
// a line that comes after a stall longer than joinWindow, and is written
// once goReportWindow has passed without one.
func TestGoReportWaitsLonger(t *testing.T) {
	var emitted []string
	f := framer{pending: map[string]*entry{}, emit: func(e *entry) { emitted = append(emitted, e.text()) }}
	now := time.Now()
	f.add(line{at: now, text: "panic: boom", stream: "stderr"})
	f.add(line{at: now, text: "", stream: "stderr"})
	now = now.Add(3 * joinWindow)
	if next := f.flushStale(now); next <= 0 || len(emitted) != 0 {
		t.Fatalf("after 3 joinWindows: next %v, emitted %q", next, emitted)
	}
	f.add(line{at: now, text: "goroutine 1 [running]:", stream: "stderr"})
	f.add(line{at: now.Add(time.Millisecond), text: "main.main()", stream: "stderr"})
	if next := f.flushStale(now.Add(time.Millisecond + goReportWindow)); next != 0 || len(emitted) != 1 || emitted[0] != "panic: boom\n\ngoroutine 1 [running]:\nmain.main()" {
		t.Fatalf("after goReportWindow: next %v, emitted %q", next, emitted)
	}
}

// TestHeldEntryIsWrittenAfterJoinWindow: a trace whose last line came
// alone (nothing follows for a while) is still written, about joinWindow
// later, without waiting for more output or Close.
func TestHeldEntryIsWrittenAfterJoinWindow(t *testing.T) {
	logger, logs := observed()
	s := NewSink(logger, Options{})
	pr, pw := io.Pipe()
	defer func() { pw.Close(); s.Close() }()
	s.Follow(pr, "stderr")
	start := time.Now()
	io.WriteString(pw, "Error: boom\n    at a (/app/a.js:1:1)\n")
	waitFor(t, 5*time.Second, "the held trace", func() bool { return logs.Len() == 1 })
	if e := logs.All()[0]; e.Message != "Error: boom\n    at a (/app/a.js:1:1)" {
		t.Fatalf("message %q", e.Message)
	}
	t.Logf("held trace written after %v", time.Since(start))
}

// TestObjectThatIsNotARecordIsKeptWhole: a JSON object without a level is
// not taken for pino's envelope: its time, pid and hostname stay (renamed
// where they clash with wattd's own fields).
func TestObjectThatIsNotARecordIsKeptWhole(t *testing.T) {
	e := only(t, relay(t, "stdout", `{"event":"sync","time":"2026-01-01T00:00:00Z","pid":7,"hostname":"h","v":1}`+"\n"))
	m := e.ContextMap()
	want := map[string]any{"event": "sync", "worker.time": "2026-01-01T00:00:00Z", "worker.pid": int64(7), "worker.hostname": "h", "v": int64(1), "pid": int64(4242)}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("field %s = %#v, want %#v", k, m[k], v)
		}
	}
	if e.Level != zapcore.InfoLevel || e.Message != "" {
		t.Errorf("got %v %q", e.Level, e.Message)
	}
}

func messages(entries []observer.LoggedEntry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Message
	}
	return out
}

// TestNodeVersionLineInALaterRead: Node.js writes the "Node.js vX" that
// closes its report of an uncaught error on its own, after a blank line;
// coming in a later read than the stack, it still joins the report.
func TestNodeVersionLineInALaterRead(t *testing.T) {
	out := relayWrites(t, "stderr", "Error: boom\n    at f (/app/index.js:3:7)\n    at node:internal/main/run_main_module:33:47\n", "\n", "Node.js v20.20.2\n", "next\n")
	if len(out) != 2 || !strings.HasSuffix(out[0].Message, "run_main_module:33:47\n\nNode.js v20.20.2") || out[1].Message != "next" {
		t.Fatalf("got %d entries %q", len(out), messages(out))
	}
	// A blank line after a plain message is no continuation.
	out = relayWrites(t, "stdout", "listening\n", "\n", "Node.js v20.20.2\n")
	if len(out) < 2 {
		t.Fatalf("got %d entries %q, want the version line apart", len(out), messages(out))
	}
}
