package logs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// workerLogger mimics what the supervisor hands a Sink: a logger already
// tagged with the worker's identity.
func workerLogger(core zapcore.Core) *zap.Logger {
	return zap.New(core, zap.ErrorOutput(zapcore.AddSync(io.Discard))).
		With(zap.String("app", "api"), zap.Int("worker", 0), zap.Int("pid", 4242))
}

func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(TraceLevel)
	return workerLogger(core), logs
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// within runs f and fails the test if it does not return in time.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not finish within %v", what, d)
	}
}

// relay runs text through a Sink on one stream and returns what was logged.
func relay(t *testing.T, stream, text string) []observer.LoggedEntry {
	t.Helper()
	logger, logs := observed()
	s := NewSink(logger, Options{})
	s.Follow(strings.NewReader(text), stream)
	within(t, 5*time.Second, "Close", s.Close)
	return logs.All()
}

// relayWrites runs each write through a pipe on its own, as a worker's
// separate writes reach wattd, and returns what was logged. The writes
// come a microsecond apart on the sink's clock however the goroutines are
// scheduled, as a worker's writes in a row do: the framing sees reads and
// shapes, and a stall of the test never parts an entry.
func relayWrites(t *testing.T, stream string, writes ...string) []observer.LoggedEntry {
	t.Helper()
	logger, logs := observed()
	var mu sync.Mutex
	now := time.Now()
	s := NewSink(logger, Options{clock: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Microsecond)
		return now
	}})
	pr, pw := io.Pipe()
	s.Follow(pr, stream)
	for _, w := range writes {
		if _, err := io.WriteString(pw, w); err != nil {
			t.Fatal(err)
		}
	}
	pw.Close()
	within(t, 5*time.Second, "Close", s.Close)
	return logs.All()
}

// loggedLines counts the worker lines in the logged entries.
func loggedLines(logs *observer.ObservedLogs) int {
	n := 0
	for _, e := range logs.All() {
		n += strings.Count(e.Message, "\n") + 1
	}
	return n
}

func only(t *testing.T, entries []observer.LoggedEntry) observer.LoggedEntry {
	t.Helper()
	if len(entries) != 1 {
		t.Fatalf("got %d entries, want 1: %+v", len(entries), entries)
	}
	return entries[0]
}

// slowCore makes every write take a while, like a daemon whose output is a
// congested pipe or a slow disk.
type slowCore struct {
	zapcore.Core
	delay time.Duration
}

func (c slowCore) With(f []zapcore.Field) zapcore.Core {
	return slowCore{c.Core.With(f), c.delay}
}

func (c slowCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c slowCore) Write(e zapcore.Entry, f []zapcore.Field) error {
	time.Sleep(c.delay)
	return c.Core.Write(e, f)
}

// failingCore records every entry and then reports a write error, like a
// daemon whose stdout has gone away.
type failingCore struct{ zapcore.Core }

func (c failingCore) With(f []zapcore.Field) zapcore.Core { return failingCore{c.Core.With(f)} }
func (c failingCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	return ce.AddCore(e, c)
}

func (c failingCore) Write(e zapcore.Entry, f []zapcore.Field) error {
	_ = c.Core.Write(e, f)
	return errors.New("write /dev/stdout: broken pipe")
}

func TestPinoLineIsMerged(t *testing.T) {
	written := time.Now().Add(-3 * time.Second).Truncate(time.Millisecond)
	in := `{"level":30,"time":` + strconv.FormatInt(written.UnixMilli(), 10) + `,"pid":123,"hostname":"h","msg":"hello","reqId":"x","v":1,` +
		`"req":{"method":"GET","url":"/","headers":{"host":"a"}},"n":12345678901234567,"ok":true,"ratio":0.5,"none":null}` + "\n"
	e := only(t, relay(t, "stdout", in))

	if e.Message != "hello" || e.Level != zapcore.InfoLevel {
		t.Fatalf("got %v %q, want info \"hello\"", e.Level, e.Message)
	}
	if !e.Time.Equal(written) {
		t.Errorf("entry time %v, want the worker's time member %v", e.Time, written)
	}
	m := e.ContextMap()
	want := map[string]any{
		"app": "api", "worker": int64(0), "pid": int64(4242),
		"reqId": "x", "n": int64(12345678901234567), "ok": true, "ratio": 0.5, "none": nil,
	}
	for k, v := range want {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("field %s = %#v (present %v), want %#v", k, got, ok, v)
		}
	}
	// As in Watt, a structured line gets no stream field.
	for _, k := range []string{"time", "hostname", "level", "msg", "v", "truncated", "stream"} {
		if _, ok := m[k]; ok {
			t.Errorf("field %s should not be logged", k)
		}
	}
	req, ok := m["req"].(map[string]any)
	if !ok {
		t.Fatalf("req = %#v, want a nested object", m["req"])
	}
	if req["method"] != "GET" || req["headers"].(map[string]any)["host"] != "a" {
		t.Errorf("req = %#v", req)
	}
	if len(m) != len(want)+1 {
		t.Errorf("unexpected fields: %#v", m)
	}
	// The order the worker wrote its members in is kept.
	var keys []string
	for _, f := range e.Context {
		keys = append(keys, f.Key)
	}
	if got := strings.Join(keys, ","); got != "app,worker,pid,reqId,req,n,ok,ratio,none" {
		t.Errorf("field order %s", got)
	}
}

func TestPinoLevels(t *testing.T) {
	cases := []struct {
		level string
		want  zapcore.Level
	}{
		{`10`, TraceLevel},
		{`20`, zapcore.DebugLevel},
		{`30`, zapcore.InfoLevel},
		{`35`, zapcore.InfoLevel},
		{`40`, zapcore.WarnLevel},
		{`50`, zapcore.ErrorLevel},
		{`60`, zapcore.FatalLevel},
		{`"trace"`, TraceLevel},
		{`"debug"`, zapcore.DebugLevel},
		{`"info"`, zapcore.InfoLevel},
		{`"INFO"`, zapcore.InfoLevel},
		{`"warn"`, zapcore.WarnLevel},
		{`"warning"`, zapcore.WarnLevel},
		{`"error"`, zapcore.ErrorLevel},
		{`"fatal"`, zapcore.FatalLevel},
		{`"FATAL"`, zapcore.FatalLevel},
	}
	for _, c := range cases {
		for _, stream := range []string{"stdout", "stderr"} {
			e := only(t, relay(t, stream, `{"level":`+c.level+`,"msg":"m"}`+"\n"))
			if e.Level != c.want {
				t.Errorf("%s level %s: got %v, want %v", stream, c.level, e.Level, c.want)
			}
		}
	}
	// Without a usable level the stream decides.
	for _, in := range []string{`{"msg":"m"}`, `{"level":"chatty","msg":"m"}`, `{"level":[1],"msg":"m"}`} {
		if e := only(t, relay(t, "stderr", in)); e.Level != zapcore.ErrorLevel || e.Message != "m" {
			t.Errorf("%s on stderr: got %v %q", in, e.Level, e.Message)
		}
		if e := only(t, relay(t, "stdout", in)); e.Level != zapcore.InfoLevel {
			t.Errorf("%s on stdout: got %v", in, e.Level)
		}
	}
}

func TestWorkerFieldsDoNotOverwriteOurs(t *testing.T) {
	in := `{"level":30,"msg":"m","app":"evil","worker":"w","stream":"s","truncated":"t","logger":"pino","name":"n"}`
	e := only(t, relay(t, "stdout", in))
	m := e.ContextMap()
	want := map[string]any{
		"app": "api", "worker": int64(0), "worker.name": "n",
		"worker.app": "evil", "worker.worker": "w", "worker.stream": "s",
		"worker.truncated": "t", "worker.logger": "pino",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("field %s = %#v, want %#v", k, m[k], v)
		}
	}
	// Each key must appear once, or encoders would emit duplicates.
	seen := map[string]int{}
	for _, f := range e.Context {
		seen[f.Key]++
	}
	for k, n := range seen {
		if n > 1 {
			t.Errorf("key %s appears %d times", k, n)
		}
	}
}

func TestMessageKey(t *testing.T) {
	e := only(t, relay(t, "stdout", `{"level":"info","message":"from message","x":1}`))
	if e.Message != "from message" {
		t.Errorf("message = %q", e.Message)
	}
	if _, ok := e.ContextMap()["message"]; ok {
		t.Error("message member used as the message should not also be a field")
	}
	e = only(t, relay(t, "stdout", `{"msg":"from msg","message":"other"}`))
	if e.Message != "from msg" || e.ContextMap()["message"] != "other" {
		t.Errorf("got %q %v", e.Message, e.ContextMap())
	}
}

func TestPlainLines(t *testing.T) {
	out := relayWrites(t, "stdout", "listening on 3000\r\n", "not json {\n", "[1,2]\n", "{\"a\":1} and more\n", "\x1b[32mgreen\x1b[0m\n", "last without newline")
	wantMsgs := []string{"listening on 3000", "not json {", "[1,2]", `{"a":1} and more`, "\x1b[32mgreen\x1b[0m", "last without newline"}
	if len(out) != len(wantMsgs) {
		t.Fatalf("got %d entries, want %d: %+v", len(out), len(wantMsgs), out)
	}
	for i, e := range out {
		if e.Message != wantMsgs[i] || e.Level != zapcore.InfoLevel || e.ContextMap()["stream"] != "stdout" {
			t.Errorf("entry %d: %v %q %v", i, e.Level, e.Message, e.ContextMap())
		}
	}
	e := only(t, relay(t, "stderr", "Error: boom\n"))
	if e.Level != zapcore.ErrorLevel || e.Message != "Error: boom" || e.ContextMap()["stream"] != "stderr" {
		t.Errorf("stderr: %v %q %v", e.Level, e.Message, e.ContextMap())
	}
}

func TestLoggerLevelFiltersWorkerLines(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	s := NewSink(workerLogger(core), Options{})
	s.Follow(strings.NewReader(`{"level":20,"msg":"debug"}`+"\n"+`{"level":30,"msg":"info"}`+"\n"), "stdout")
	s.Close()
	if e := only(t, logs.All()); e.Message != "info" {
		t.Errorf("got %q", e.Message)
	}
}

func TestLongLineIsCut(t *testing.T) {
	big := strings.Repeat("a", 1<<20)
	out := relay(t, "stdout", big+"\nnext\n")
	if len(out) != 2 {
		t.Fatalf("got %d entries, want 2", len(out))
	}
	if len(out[0].Message) != DefaultMaxLineBytes || out[0].ContextMap()["truncated"] != true {
		t.Errorf("long line: %d bytes, fields %v", len(out[0].Message), out[0].ContextMap())
	}
	if out[1].Message != "next" {
		t.Errorf("line after the long one = %q", out[1].Message)
	}
	if _, ok := out[1].ContextMap()["truncated"]; ok {
		t.Error("short line marked truncated")
	}
}

func TestLongJSONLineIsNotParsed(t *testing.T) {
	in := `{"level":50,"msg":"` + strings.Repeat("b", 100) + `"}`
	logger, logs := observed()
	s := NewSink(logger, Options{MaxLineBytes: 64})
	s.Follow(strings.NewReader(in), "stdout")
	s.Close()
	e := only(t, logs.All())
	if e.Level != zapcore.InfoLevel || len(e.Message) != 64 || e.ContextMap()["truncated"] != true {
		t.Errorf("got %v %d bytes %v", e.Level, len(e.Message), e.ContextMap())
	}
}

func TestCutKeepsUTF8Valid(t *testing.T) {
	logger, logs := observed()
	s := NewSink(logger, Options{MaxLineBytes: 33})
	s.Follow(strings.NewReader(strings.Repeat("é", 40)+"\n"), "stdout")
	s.Close()
	e := only(t, logs.All())
	if !utf8.ValidString(e.Message) || e.Message != strings.Repeat("é", 16) {
		t.Errorf("cut line %q", e.Message)
	}
}

// hugeLine yields one line of n bytes without ever holding it in memory.
type hugeLine struct {
	left  int
	chunk []byte
	rest  io.Reader
}

func (h *hugeLine) Read(p []byte) (int, error) {
	if h.left == 0 {
		return h.rest.Read(p)
	}
	n := copy(p[:min(len(p), h.left)], h.chunk)
	h.left -= n
	return n, nil
}

func TestHugeLineIsNotBuffered(t *testing.T) {
	const size = 50 << 20
	chunk := []byte(strings.Repeat("x", 64<<10))
	r := &hugeLine{left: size, chunk: chunk, rest: strings.NewReader("\nafter\n")}
	logger, logs := observed()

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	within(t, 20*time.Second, "relaying a 50 MB line", func() {
		s := NewSink(logger, Options{})
		s.Follow(r, "stderr")
		s.Close()
	})
	runtime.ReadMemStats(&after)

	grew := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d KiB while relaying a %d MiB line", grew>>10, size>>20)
	if grew > 8<<20 {
		t.Errorf("allocated %d bytes for a %d byte line", grew, size)
	}
	out := logs.All()
	if len(out) != 2 {
		t.Fatalf("got %d entries, want 2", len(out))
	}
	if len(out[0].Message) != DefaultMaxLineBytes || out[0].ContextMap()["truncated"] != true || out[0].Level != zapcore.ErrorLevel {
		t.Errorf("huge line logged as %v, %d bytes, %v", out[0].Level, len(out[0].Message), out[0].ContextMap())
	}
	if out[1].Message != "after" {
		t.Errorf("next line = %q", out[1].Message)
	}
}

var droppedMsg = regexp.MustCompile(`^dropped (\d+) lines of worker output$`)

func TestFloodNeverBlocksTheWorker(t *testing.T) {
	const lines = 200_000
	obs, logs := observer.New(zapcore.DebugLevel)
	s := NewSink(workerLogger(slowCore{obs, time.Millisecond}), Options{QueueLines: 256})

	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	s.Follow(pr, "stdout")

	// Tail must be usable while the flood is on.
	stopTail := make(chan struct{})
	var tailers sync.WaitGroup
	tailers.Go(func() {
		for {
			select {
			case <-stopTail:
				return
			default:
				_ = s.Tail()
			}
		}
	})

	start := time.Now()
	// A sink that blocked the writer would hold it for lines × 1 ms (200 s)
	// behind the slow core; the bound leaves room for a loaded machine and
	// the race detector. The writer reports its error through a channel,
	// not t, since it may outlive the test when the bound is missed.
	flushed := make(chan error, 1)
	within(t, 30*time.Second, "the worker writing 200k lines", func() {
		w := bufio.NewWriterSize(pw, 64<<10)
		for i := range lines {
			fmt.Fprintf(w, "line %d\n", i)
		}
		flushed <- w.Flush()
		pw.Close()
	})
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	t.Logf("worker wrote %d lines in %v", lines, time.Since(start))
	close(stopTail)
	tailers.Wait()

	within(t, 10*time.Second, "Close", s.Close)

	if s.Dropped() == 0 {
		t.Fatal("nothing dropped although the logger was far slower than the worker")
	}
	checkAccounting(t, s, logs, lines)
	tail := s.Tail()
	if len(tail) != DefaultTailLines || tail[len(tail)-1] != fmt.Sprintf("line %d", lines-1) {
		t.Errorf("tail after flood ends with %q (%d lines)", tail[len(tail)-1], len(tail))
	}
}

func TestDropIsReportedWhenWorkerGoesQuiet(t *testing.T) {
	obs, logs := observer.New(zapcore.DebugLevel)
	release := make(chan struct{})
	s := NewSink(workerLogger(gateCore{obs, release}), Options{QueueLines: 2})

	pr, pw := io.Pipe()
	s.Follow(pr, "stdout")
	// One write per line, as in TestCountsAddUpAcrossSinks: five lines in
	// one write are one entry, which a writer keeping pace with the reader
	// takes whole off the queue, and then none is dropped (it happened in
	// CI). Apart, "a" blocks the writer and the queue holds two of the rest.
	for _, l := range strings.Split("abcde", "") {
		fmt.Fprint(pw, l+"\n")
	}
	waitFor(t, 5*time.Second, "drops", func() bool { return s.Dropped() >= 2 })
	close(release)
	// The pipe stays open and silent: the report must not wait for more
	// output or for Close.
	waitFor(t, 5*time.Second, "the drop report", func() bool {
		return logs.FilterMessageSnippet("lines of worker output").Len() > 0
	})
	pw.Close()
	within(t, 5*time.Second, "Close", s.Close)
	checkAccounting(t, s, logs, 5)
}

// gateCore blocks every write until release is closed.
type gateCore struct {
	zapcore.Core
	release chan struct{}
}

func (c gateCore) With(f []zapcore.Field) zapcore.Core { return gateCore{c.Core.With(f), c.release} }
func (c gateCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	return ce.AddCore(e, c)
}

func (c gateCore) Write(e zapcore.Entry, f []zapcore.Field) error {
	<-c.release
	return c.Core.Write(e, f)
}

func TestWriteErrorsDoNotStopDraining(t *testing.T) {
	const lines = 20_000
	obs, logs := observer.New(zapcore.DebugLevel)
	s := NewSink(workerLogger(failingCore{obs}), Options{QueueLines: 64})
	pr, pw := io.Pipe()
	s.Follow(pr, "stderr")
	// A sink that stopped draining would hold the writer for ever (an
	// io.Pipe passes nothing on until it is read); the bound leaves room
	// for a loaded machine and the race detector: 20,000 synchronous
	// writes took over 5 s there.
	within(t, 30*time.Second, "the worker writing", func() {
		for i := range lines {
			if _, err := fmt.Fprintf(pw, "line %d\n", i); err != nil {
				t.Error(err)
				return
			}
		}
		pw.Close()
	})
	within(t, 10*time.Second, "Close", s.Close)
	checkAccounting(t, s, logs, lines)
	if got := s.Tail(); got[len(got)-1] != fmt.Sprintf("line %d", lines-1) {
		t.Errorf("tail ends with %q", got[len(got)-1])
	}
}

// checkAccounting asserts that every line the worker wrote was either
// relayed or dropped, and that the drop reports add up to Dropped.
func checkAccounting(t *testing.T, s *Sink, logs *observer.ObservedLogs, lines int) {
	t.Helper()
	var reported uint64
	var relayed int
	for _, e := range logs.All() {
		if m := droppedMsg.FindStringSubmatch(e.Message); m != nil {
			n, _ := strconv.ParseUint(m[1], 10, 64)
			reported += n
			if e.Level != zapcore.WarnLevel || e.ContextMap()["dropped"] != n || e.ContextMap()["app"] != "api" {
				t.Errorf("drop report %v %v", e.Level, e.ContextMap())
			}
			continue
		}
		relayed += strings.Count(e.Message, "\n") + 1 // lines written together make one entry
	}
	dropped := s.Dropped()
	if reported != dropped {
		t.Errorf("drop reports add up to %d, Dropped() = %d", reported, dropped)
	}
	if uint64(relayed)+dropped != uint64(lines) {
		t.Errorf("relayed %d + dropped %d != %d", relayed, dropped, lines)
	}
	t.Logf("relayed %d, dropped %d", relayed, dropped)
}

func TestTail(t *testing.T) {
	logger, _ := observed()
	s := NewSink(logger, Options{TailLines: 4})
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	s.Follow(outR, "stdout")
	s.Follow(errR, "stderr")

	if got := s.Tail(); len(got) != 0 {
		t.Fatalf("tail before output = %q", got)
	}
	steps := []struct {
		w    io.Writer
		line string
	}{
		{outW, "out 1"}, {errW, "err 1"}, {outW, "out 2"}, {errW, "err 2"},
		{errW, "err 3"}, {outW, `{"level":50,"msg":"json"}`},
	}
	for i, st := range steps {
		fmt.Fprintln(st.w, st.line)
		waitFor(t, 5*time.Second, "line "+st.line, func() bool {
			got := s.Tail()
			return len(got) == min(i+1, 4) && got[len(got)-1] == st.line
		})
	}
	want := []string{"out 2", "err 2", "err 3", `{"level":50,"msg":"json"}`}
	if got := s.Tail(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("tail = %q, want %q", got, want)
	}
	// The result is a copy.
	got := s.Tail()
	got[0] = "changed"
	if s.Tail()[0] != "out 2" {
		t.Error("Tail shares its storage with the caller")
	}
	outW.Close()
	errW.Close()
	within(t, 5*time.Second, "Close", s.Close)
	if got := s.Tail(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("tail after Close = %q", got)
	}
}

func TestTailIncludesDroppedLines(t *testing.T) {
	obs, _ := observer.New(zapcore.DebugLevel)
	release := make(chan struct{})
	s := NewSink(workerLogger(gateCore{obs, release}), Options{QueueLines: 1, TailLines: 3})
	var in strings.Builder
	for i := range 100 {
		fmt.Fprintf(&in, "line %d\n", i)
	}
	s.Follow(strings.NewReader(in.String()), "stderr")
	waitFor(t, 5*time.Second, "the last line in the tail", func() bool {
		got := s.Tail()
		return len(got) == 3 && got[2] == "line 99"
	})
	if s.Dropped() == 0 {
		t.Error("expected drops with a blocked writer")
	}
	if got := strings.Join(s.Tail(), "|"); got != "line 97|line 98|line 99" {
		t.Errorf("tail = %s", got)
	}
	close(release)
	within(t, 5*time.Second, "Close", s.Close)
}

func TestTailDisabled(t *testing.T) {
	logger, logs := observed()
	s := NewSink(logger, Options{TailLines: -1})
	s.Follow(strings.NewReader("a\nb\n"), "stdout")
	s.Close()
	if got := s.Tail(); len(got) != 0 {
		t.Errorf("tail = %q", got)
	}
	if n := loggedLines(logs); n != 2 {
		t.Errorf("logged %d lines", n)
	}
}

func TestCloseWaitsForQueueToDrain(t *testing.T) {
	const lines = 200
	obs, logs := observer.New(zapcore.DebugLevel)
	s := NewSink(workerLogger(slowCore{obs, 2 * time.Millisecond}), Options{QueueLines: 1000})
	var in strings.Builder
	for i := range lines {
		fmt.Fprintf(&in, "line %d\n", i)
	}
	s.Follow(strings.NewReader(in.String()), "stdout")
	s.Follow(strings.NewReader("one more\n"), "stderr")
	within(t, 10*time.Second, "Close", s.Close)
	if got := loggedLines(logs); got != lines+1 || s.Dropped() != 0 {
		t.Fatalf("after Close: %d lines logged, %d dropped; want %d, 0", got, s.Dropped(), lines+1)
	}
	if n := logs.FilterField(zap.String("stream", "stderr")).Len(); n != 1 {
		t.Errorf("%d stderr lines, want 1", n)
	}
	// A second Close returns at once.
	within(t, time.Second, "second Close", s.Close)
}

func TestCloseWaitsForReaders(t *testing.T) {
	logger, logs := observed()
	s := NewSink(logger, Options{})
	pr, pw := io.Pipe()
	s.Follow(pr, "stdout")
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	fmt.Fprintln(pw, "still running")
	select {
	case <-closed:
		t.Fatal("Close returned while a followed stream was open")
	case <-time.After(50 * time.Millisecond):
	}
	pw.Close()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after EOF")
	}
	if e := only(t, logs.All()); e.Message != "still running" {
		t.Errorf("got %q", e.Message)
	}
}

func TestFollowAfterCloseStillDrains(t *testing.T) {
	logger, logs := observed()
	s := NewSink(logger, Options{})
	s.Close()
	pr, pw := io.Pipe()
	s.Follow(pr, "stdout")
	within(t, 5*time.Second, "writing to a pipe followed after Close", func() {
		fmt.Fprintln(pw, "late")
		pw.Close()
	})
	if logs.Len() != 0 {
		t.Errorf("logged %d lines after Close", logs.Len())
	}
}

func TestReadErrorEndsFollow(t *testing.T) {
	logger, logs := observed()
	s := NewSink(logger, Options{})
	s.Follow(io.MultiReader(strings.NewReader("partial"), iotestErr{}), "stdout")
	within(t, 5*time.Second, "Close", s.Close)
	if logs.FilterMessage("partial").Len() != 1 {
		t.Errorf("partial line not logged: %+v", logs.All())
	}
	if logs.FilterMessage("reading worker output stopped").Len() != 1 {
		t.Errorf("read error not reported: %+v", logs.All())
	}
}

type iotestErr struct{}

func (iotestErr) Read([]byte) (int, error) { return 0, errors.New("read |0: file already closed") }

func TestLastStderr(t *testing.T) {
	s := NewSink(zap.NewNop(), Options{})
	s.Follow(strings.NewReader("FATAL: boom\n\n"), "stderr")
	s.Close()
	s2 := NewSink(zap.NewNop(), Options{})
	s2.Follow(strings.NewReader("later stdout\n"), "stdout")
	s2.Close()
	if got := s.LastStderr(); got != "FATAL: boom" {
		t.Fatalf("LastStderr = %q", got)
	}
	if got := s2.LastStderr(); got != "" {
		t.Fatalf("stdout counted as stderr: %q", got)
	}
}

// TestLastStderrNamesTheError: what a worker's death is reported with
// (ctl ps, the start failure) is the error, not what the runtime prints
// after it: Node ends every uncaught error with "Node.js v20.20.2".
func TestLastStderrNamesTheError(t *testing.T) {
	frames := strings.Repeat("    at f (node:internal/x:1:2)\n", 10)
	for _, tc := range []struct{ name, out, want string }{
		{"node uncaught", "/app/index.js:1\nconst e = new Error('boom'); throw e\n                             ^\n\n" +
			"Error: boom in entry\n" + frames + "    at node:internal/main/run_main_module:28:49 {\n  code: 'E_BOOM'\n}\n\nNode.js v20.20.2\n",
			"Error: boom in entry"},
		{"node error code", "TypeError [ERR_INVALID_ARG_TYPE]: The \"path\" argument must be of type string\n" + frames + "\nNode.js v24.1.0\n",
			`TypeError [ERR_INVALID_ARG_TYPE]: The "path" argument must be of type string`},
		{"v8 out of memory", "<--- Last few GCs --->\n\nFATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory\n" +
			"----- Native stack trace -----\n\n 1: 0xb8d0a3 node::OOMErrorHandler(char const*) [node]\n 2: 0xf06b10 v8::Utils::ReportOOMFailure [node]\n",
			"FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory"},
		{"go panic", "panic: boom\n\ngoroutine 1 [running]:\nmain.main()\n\t/src/main.go:5 +0x25\nexit status 2\n", "panic: boom"},
		{"python", "Traceback (most recent call last):\n  File \"/app/x.py\", line 1, in <module>\n    raise ValueError('bad')\nValueError: bad\n", "ValueError: bad"},
		{"no error report", "listening\nshutting down: lost the database\n\nNode.js v20.20.2\n", "shutting down: lost the database"},
		// An error handled before the death is not its reason.
		{"old error", "Error: retrying\n" + strings.Repeat("tick\n", 100) + "gave up\n", "gave up"},
		{"handled error", "Error: retrying\nfatal: config missing\n", "fatal: config missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSink(zap.NewNop(), Options{})
			s.Follow(strings.NewReader(tc.out), "stderr")
			s.Close()
			if got := s.LastStderr(); got != tc.want {
				t.Errorf("LastStderr = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestCountsAddUpAcrossSinks: the sinks of a slot's successive processes
// share one Counts, which sums their drops and truncated lines.
func TestCountsAddUpAcrossSinks(t *testing.T) {
	var c Counts
	for round := range 2 {
		obs, _ := observer.New(zapcore.DebugLevel)
		release := make(chan struct{})
		s := NewSink(workerLogger(gateCore{obs, release}), Options{QueueLines: 2, MaxLineBytes: 64, Counts: &c})
		pr, pw := io.Pipe()
		s.Follow(pr, "stdout")
		// One write per line: lines written together are one entry, which
		// a writer that keeps pace with the reader takes whole off the
		// queue before it writes anything, and then none is dropped
		// (it happened in CI). Written apart, "a" is an entry of its own,
		// whose write blocks; the writer takes nothing more and the queue
		// holds two: of eight lines at least four are dropped.
		for _, l := range strings.Split("abcdefgh", "") {
			fmt.Fprint(pw, l+"\n")
		}
		waitFor(t, 5*time.Second, "drops", func() bool { return s.Dropped() >= 2 })
		close(release)
		fmt.Fprint(pw, strings.Repeat("x", 200)+"\n")
		pw.Close()
		within(t, 5*time.Second, "Close", s.Close)
		if got := c.Truncated.Load(); got != uint64(round+1) {
			t.Errorf("after sink %d: Truncated = %d, want %d", round+1, got, round+1)
		}
		if round == 0 && c.Dropped.Load() != s.Dropped() {
			t.Errorf("Dropped = %d, the sink dropped %d", c.Dropped.Load(), s.Dropped())
		}
	}
	if c.Dropped.Load() < 4 {
		t.Errorf("Dropped over two sinks = %d, want at least 4", c.Dropped.Load())
	}
}

// TestStructuredLinesOfEveryLevelPass: the sink drops no structured line
// by level (the runtime's level is the logger's own); an application's own
// logger.level is its globalThis.platformatic.logger's, and a logger of its
// own keeps its lines, as under Watt.
func TestStructuredLinesOfEveryLevelPass(t *testing.T) {
	logger, logs := observed()
	s := NewSink(logger, Options{})
	s.Follow(strings.NewReader(strings.Join([]string{
		`{"level":20,"msg":"debug record"}`,
		`{"level":30,"msg":"info record"}`,
		`{"level":"info","msg":"info by name"}`,
		`{"level":40,"msg":"warn record"}`,
		`plain text`,
	}, "\n")+"\n"), "stdout")
	within(t, 5*time.Second, "Close", s.Close)
	if got := strings.Join(messages(logs.All()), ","); got != "debug record,info record,info by name,warn record,plain text" {
		t.Errorf("logged %q", got)
	}
}

// A standby promoted into a slot: its later lines carry the slot's fields.
func TestSetLoggerRelabelsLaterLines(t *testing.T) {
	core, logs := observer.New(TraceLevel)
	s := NewSink(zap.New(core).With(zap.Int("worker", -1)), Options{})
	pr, pw := io.Pipe()
	s.Follow(pr, "stdout")
	if _, err := io.WriteString(pw, "before\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the first line", func() bool { return logs.Len() == 1 })
	s.SetLogger(zap.New(core).With(zap.Int("worker", 0)))
	if _, err := io.WriteString(pw, "after\n"); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	within(t, 5*time.Second, "Close", s.Close)
	got := map[string]int64{}
	for _, e := range logs.All() {
		got[e.Message] = e.ContextMap()["worker"].(int64)
	}
	if got["before"] != -1 || got["after"] != 0 {
		t.Fatalf("worker fields: %v, want before -1, after 0", got)
	}
}

// TestLineWithoutNewlineIsLoggedAfterAWhile: the start of a line written
// without its newline (a worker's "connecting… ", then nothing for a long
// time) is logged once partialWait passes with nothing more, as its own
// entry, instead of waiting for the next newline and being joined to the
// next line; a line whose rest comes at once stays one line.
func TestLineWithoutNewlineIsLoggedAfterAWhile(t *testing.T) {
	logger, logs := observed()
	s := NewSink(logger, Options{})
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	s.Follow(pr, "stdout")
	write := func(text string) {
		t.Helper()
		if _, err := io.WriteString(pw, text); err != nil {
			t.Fatal(err)
		}
	}
	write("connecting to the database... ")
	waitFor(t, 5*time.Second, "the line without its newline to be logged", func() bool { return logs.Len() == 1 })
	if got := logs.All()[0].Message; got != "connecting to the database... " {
		t.Fatalf("logged %q", got)
	}
	write("done\n")
	waitFor(t, 5*time.Second, "the rest of the line", func() bool { return logs.Len() == 2 })
	write("one line, ")
	write("written in two parts\n")
	pw.Close()
	within(t, 5*time.Second, "Close", s.Close)
	var got []string
	for _, e := range logs.All() {
		got = append(got, e.Message)
	}
	want := []string{"connecting to the database... ", "done", "one line, written in two parts"}
	if !slices.Equal(got, want) {
		t.Fatalf("logged %q, want %q", got, want)
	}
}

// TestLineAfterALongLineWithoutNewline: a line longer than the limit,
// written without its newline, is cut and logged; when its rest does not
// come within partialWait, the next line written is an entry of its own,
// not thrown away as the rest of the long one.
func TestLineAfterALongLineWithoutNewline(t *testing.T) {
	logger, logs := observed()
	s := NewSink(logger, Options{MaxLineBytes: 64})
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	s.Follow(pr, "stdout")
	if _, err := io.WriteString(pw, strings.Repeat("P", 200)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the long line to be cut and logged", func() bool { return logs.Len() == 1 })
	// Past partialWait with nothing more: the long line is over.
	time.Sleep(partialWait + 500*time.Millisecond)
	if _, err := io.WriteString(pw, "after the long line\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the line after the long one", func() bool { return logs.Len() == 2 })
	if _, err := io.WriteString(pw, "second\n"); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	within(t, 5*time.Second, "Close", s.Close)
	var got []string
	for _, e := range logs.All() {
		got = append(got, e.Message)
	}
	want := []string{strings.Repeat("P", 64), "after the long line", "second"}
	if !slices.Equal(got, want) {
		t.Fatalf("logged %q, want %q", got, want)
	}
}

// TestLineAtTheLimit: a line exactly MaxLineBytes long (its newline, or
// CRLF, not counted) is logged whole and not marked truncated, without its
// \r; one byte more is cut to the limit and marked; the next line is
// intact. The same whether the line comes in one read or byte by byte.
func TestLineAtTheLimit(t *testing.T) {
	const limit = 64
	a := func(n int) string { return strings.Repeat("a", n) }
	cases := []struct {
		name, in  string
		want      string
		truncated bool
	}{
		{"under, LF", a(limit-1) + "\n", a(limit - 1), false},
		{"at, LF", a(limit) + "\n", a(limit), false},
		{"over, LF", a(limit+1) + "\n", a(limit), true},
		{"under, CRLF", a(limit-1) + "\r\n", a(limit - 1), false},
		{"at, CRLF", a(limit) + "\r\n", a(limit), false},
		{"over, CRLF", a(limit+1) + "\r\n", a(limit), true},
		{"far over, CRLF", a(3*limit) + "\r\n", a(limit), true},
		{"at, no newline", a(limit), a(limit), false},
		{"at, CR at the end", a(limit) + "\r", a(limit), false},
		{"over, no newline", a(limit + 1), a(limit), true},
	}
	for _, c := range cases {
		for _, bytewise := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/bytewise=%v", c.name, bytewise), func(t *testing.T) {
				// The next line comes in a read of its own: one that came
				// with it would be part of the same entry (framing.go).
				var r io.Reader = strings.NewReader(c.in)
				if strings.HasSuffix(c.in, "\n") {
					r = io.MultiReader(r, strings.NewReader("next\n"))
				}
				if bytewise {
					r = iotest.OneByteReader(r)
				}
				logger, logs := observed()
				s := NewSink(logger, Options{MaxLineBytes: limit})
				s.Follow(r, "stdout")
				s.Close()
				out := logs.All()
				if len(out) == 0 {
					t.Fatal("no entry")
				}
				e := out[0]
				_, marked := e.ContextMap()["truncated"]
				if e.Message != c.want || marked != c.truncated {
					t.Errorf("got %d bytes %q, truncated %v; want %d bytes, truncated %v", len(e.Message), e.Message, marked, len(c.want), c.truncated)
				}
				if strings.HasSuffix(c.in, "\n") && (len(out) != 2 || out[1].Message != "next") {
					t.Errorf("the next line: %+v", out[1:])
				}
			})
		}
	}
}

// TestLastStderrAfterEndOfAProcess: once a process that wrote its last
// line on stderr has exited, LastStderrAfterEnd has that line as soon as
// the pipe's end is read, well within its bound, and a pipe some other
// process still holds costs the bound and no more.
func TestLastStderrAfterEndOfAProcess(t *testing.T) {
	const bound = 20 * time.Millisecond
	var waits []time.Duration
	for i := range 50 {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("sh", "-c", `echo "2026/12/06 10:00:00 cannot reach the database: $0" >&2; exit 1`, strconv.Itoa(i))
		cmd.Stderr = w
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w.Close()
		s := NewSink(zap.NewNop(), Options{})
		s.Follow(r, "stderr")
		_ = cmd.Wait()
		start := time.Now()
		last := s.LastStderrAfterEnd(bound)
		waits = append(waits, time.Since(start))
		s.Close()
		r.Close()
		if !strings.HasSuffix(last, "cannot reach the database: "+strconv.Itoa(i)) {
			t.Fatalf("round %d: LastStderrAfterEnd = %q", i, last)
		}
	}
	slices.Sort(waits)
	t.Logf("wait after the exit: median %s, p98 %s, max %s", waits[len(waits)/2], waits[len(waits)*98/100], waits[len(waits)-1])
	if waits[len(waits)/2] > bound/2 {
		t.Errorf("median wait %s: the pipe's end should come at once", waits[len(waits)/2])
	}

	// A pipe still held (a grandchild that escaped): the bound, then the
	// line read so far.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s := NewSink(zap.NewNop(), Options{})
	s.Follow(r, "stderr")
	w.WriteString("fatal: gone\n")
	waitFor(t, 5*time.Second, "the line", func() bool { return s.LastStderr() != "" })
	start := time.Now()
	if got := s.LastStderrAfterEnd(bound); got != "fatal: gone" {
		t.Errorf("LastStderrAfterEnd = %q", got)
	}
	if took := time.Since(start); took < bound || took > bound+200*time.Millisecond {
		t.Errorf("a held pipe cost %s, want the bound %s", took, bound)
	}
	w.Close()
	s.Close()
	r.Close()
}
