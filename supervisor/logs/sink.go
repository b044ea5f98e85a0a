package logs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Defaults for Options fields left at zero.
const (
	DefaultQueueLines   = 4096
	DefaultMaxLineBytes = 16 << 10
	DefaultTailLines    = 30
)

// dropReportEvery bounds how long a drop count can wait for the writer to
// catch up: under a sustained flood the queue may never empty, and the
// operator should still learn that output is being lost.
const dropReportEvery = 5 * time.Second

// minLineBytes is the smallest line limit.
const minLineBytes = 16

// Options tunes a Sink. Zero values select the defaults.
type Options struct {
	// QueueLines bounds the lines waiting to be logged. Together with
	// MaxLineBytes it caps the memory one worker's backlog can hold.
	QueueLines int
	// MaxLineBytes is the longest line kept; the rest of a longer line is
	// read and thrown away.
	MaxLineBytes int
	// TailLines is how many recent lines Tail remembers. Negative disables
	// the tail.
	TailLines int
	// Counts, when set, also receives the sink's drops and truncations:
	// one Counts shared by the sinks of a worker slot's successive
	// processes keeps the slot's totals across restarts.
	Counts *Counts

	// clock, when set, replaces time.Now for the arrival of lines and the
	// framing's join window, so that tests do not depend on scheduling.
	clock func() time.Time
}

// Counts are the lines of worker output lost on the way to the log.
type Counts struct {
	// Dropped are whole lines lost because the queue was full.
	Dropped atomic.Uint64
	// Truncated are lines longer than MaxLineBytes, of which only the
	// first MaxLineBytes were logged.
	Truncated atomic.Uint64
}

// Sink relays one worker process's output streams into the daemon's log.
//
// Each followed stream has a reader goroutine that only splits lines and
// hands them on without ever waiting, so the worker's pipe is drained as
// fast as the worker writes. A single writer goroutine does the comparatively
// slow work (JSON decoding, encoding, writing the daemon's output); when it
// falls behind, the bounded queue between them overflows and lines are
// dropped and counted rather than stalling the worker or buffering without
// limit.
type Sink struct {
	logp    atomic.Pointer[zap.Logger] // see SetLogger
	maxLine int
	counts  *Counts          // nil: not shared
	clock   func() time.Time // time.Now but in tests

	queue  chan line
	notify chan struct{} // wakes an idle writer so a drop count gets reported
	done   chan struct{} // closed when the writer has finished

	mu      sync.Mutex
	closed  bool
	readers sync.WaitGroup
	// stderrDone is closed when the followed "stderr" stream has been read
	// to its end (see LastStderrAfterEnd).
	stderrDone chan struct{}
	stderrOnce sync.Once

	dropped    atomic.Uint64 // lifetime total, for Dropped
	unreported atomic.Uint64 // drops not yet announced in the log
	closeOnce  sync.Once
	tailMu     sync.Mutex
	lastErr    string // the last telling stderr line (reason): usually why a worker died
	errHead    string // the last stderr line that starts an error report (errorHead)
	sinceHead  int    // telling stderr lines since errHead, other than its report
	tail       []string
	tailNext   int
	tailFilled bool
}

// line is one line of worker output on its way to the writer.
type line struct {
	at        time.Time // arrival, so queueing delay does not skew timestamps
	text      string
	stream    string
	truncated bool
	// more says the read that brought this line had more after it: the
	// next line of the stream was written together with this one.
	more bool
}

// NewSink starts the writer for one worker process. logger should already
// carry the fields identifying the worker (app, worker, pid); every relayed
// line adds a stream field. Close must be called to stop the writer.
func NewSink(logger *zap.Logger, opts Options) *Sink {
	if opts.QueueLines <= 0 {
		opts.QueueLines = DefaultQueueLines
	}
	if opts.MaxLineBytes <= 0 {
		opts.MaxLineBytes = DefaultMaxLineBytes
	}
	opts.MaxLineBytes = max(opts.MaxLineBytes, minLineBytes)
	if opts.TailLines == 0 {
		opts.TailLines = DefaultTailLines
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	if opts.clock == nil {
		opts.clock = time.Now
	}
	s := &Sink{
		clock:   opts.clock,
		maxLine: opts.MaxLineBytes,
		counts:  opts.Counts,
		queue:   make(chan line, opts.QueueLines),
		notify:  make(chan struct{}, 1),
		done:    make(chan struct{}),

		stderrDone: make(chan struct{}),
	}
	s.logp.Store(logger)
	if opts.TailLines > 0 {
		s.tail = make([]string, opts.TailLines)
	}
	go s.write()
	return s
}

// SetLogger makes the lines relayed from now on carry logger's fields
// instead: a standby promoted into a slot speaks as that slot's worker.
func (s *Sink) SetLogger(logger *zap.Logger) {
	if logger != nil {
		s.logp.Store(logger)
	}
}

// Follow starts relaying r, named stream ("stdout" or "stderr"), until it
// reports EOF or an error. The caller keeps ownership of r; a pipe from
// os/exec must not be closed (e.g. by cmd.Wait) before Close returns, or the
// last lines are lost.
func (s *Sink) Follow(r io.Reader, stream string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		// Nothing can be logged any more, but the worker must not block on
		// a pipe nobody reads.
		go func() { _, _ = io.Copy(io.Discard, r) }()
		return
	}
	s.readers.Add(1)
	go func() {
		defer s.readers.Done()
		s.read(r, stream)
		if stream == "stderr" {
			s.stderrOnce.Do(func() { close(s.stderrDone) })
		}
	}()
}

// LastStderrAfterEnd is LastStderr once the stderr stream has been read to
// its end, waiting at most max for that: for a worker that has exited, the
// end of its pipe comes as soon as the reader has taken its last lines (a
// process that outlived it and holds the pipe is what max is for).
func (s *Sink) LastStderrAfterEnd(max time.Duration) string {
	select {
	case <-s.stderrDone:
	default:
		t := time.NewTimer(max)
		select {
		case <-s.stderrDone:
		case <-t.C:
		}
		t.Stop()
	}
	return s.LastStderr()
}

// Close waits for every followed stream to reach EOF and for every queued
// line to be logged, then stops the writer. It is safe to call more than
// once and from several goroutines.
func (s *Sink) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.readers.Wait()
		close(s.queue)
	})
	<-s.done
}

// Dropped reports how many lines were lost because the queue was full.
func (s *Sink) Dropped() uint64 {
	return s.dropped.Load()
}

// Tail returns the most recent lines from all streams, oldest first, in the
// order they arrived. Lines dropped from the queue are still included: the
// tail exists to explain why a worker died, and the last words matter most.
func (s *Sink) Tail() []string {
	s.tailMu.Lock()
	defer s.tailMu.Unlock()
	if !s.tailFilled {
		return append([]string(nil), s.tail[:s.tailNext]...)
	}
	out := make([]string, 0, len(s.tail))
	out = append(out, s.tail[s.tailNext:]...)
	return append(out, s.tail[:s.tailNext]...)
}

// LastStderr returns the line of the worker's stderr that best says why it
// died, or "": the head of the last error report ("Error: boom",
// "panic: boom", "ValueError: boom") when nothing but that report (its
// stack, its properties) follows it, else the last line that is not a stack
// frame or Node's closing "Node.js v22.1.0", which follows every uncaught
// error.
func (s *Sink) LastStderr() string {
	s.tailMu.Lock()
	defer s.tailMu.Unlock()
	if s.errHead != "" && s.sinceHead == 0 {
		return s.errHead
	}
	return s.lastErr
}

var (
	// errorHead matches the first line of an error report: Node's and
	// Python's "TypeError: ...", "Error [ERR_X]: ...", "Uncaught ...", Go's
	// "panic: ..." and "fatal error: ...".
	// V8's "FATAL ERROR: ... heap out of memory".
	errorHead = regexp.MustCompile(`^(panic: |fatal error: |FATAL ERROR: |Uncaught |([A-Za-z_$][\w$.]*)?(Error|Exception)\b)`)
	// notReason matches the lines that never say why: stack frames
	// ("    at f (file:1:2)", Python's "  File ...", V8's native
	// " 1: 0xb8d0a3 node::..."), Node's version line.
	notReason = regexp.MustCompile(`^(\s+at |\s+File "|\s*\d+: 0x[0-9a-f]+ |Node\.js v\d)`)
	// inReport matches the other lines of an error report after its head:
	// indented ones (properties, file lines), a closing brace, Go's
	// goroutine headers and frames, V8's section rulers, "exit status N".
	inReport = regexp.MustCompile(`^(\s|\}|goroutine \d+ \[|[\w./*()-]+\(.*\)$|----- |exit status \d+$)`)
)

// noteStderr keeps what LastStderr needs from one stderr line.
func (s *Sink) noteStderr(text string) {
	s.tailMu.Lock()
	defer s.tailMu.Unlock()
	if strings.TrimSpace(text) == "" || notReason.MatchString(text) {
		return
	}
	if errorHead.MatchString(text) {
		s.errHead, s.sinceHead = text, 0
	} else if !inReport.MatchString(text) {
		s.sinceHead++
	}
	if !inReport.MatchString(text) || s.lastErr == "" {
		s.lastErr = text
	}
}

func (s *Sink) remember(text string) {
	if len(s.tail) == 0 {
		return
	}
	s.tailMu.Lock()
	s.tail[s.tailNext] = text
	s.tailNext++
	if s.tailNext == len(s.tail) {
		s.tailNext = 0
		s.tailFilled = true
	}
	s.tailMu.Unlock()
}

// partialWait is how long the start of a line, read without its newline,
// waits for the rest before it is logged as it is: a worker that writes
// "connecting… " and then hangs, or finishes the line only minutes later,
// shows it now, as Watt logs each write, and it is not glued to the next
// line. Only readers with read deadlines (the pipes of a worker's output)
// can tell; others wait for the newline. A second, not less: a line also
// comes in parts when the pipe was full (wattd's reader behind a flood)
// and the worker wrote the rest once it drained, which on a loaded machine
// can take a good part of 100 ms; a JSON log line cut in two would be two
// entries of text.
const partialWait = time.Second

// read splits r into lines. It must never block on anything but r itself.
func (s *Sink) read(r io.Reader, stream string) {
	dl, _ := r.(interface{ SetReadDeadline(time.Time) error })
	// The buffer is the line limit and room for a CRLF: a line longer than
	// the limit is logged up to it, and the rest is read and thrown away,
	// never accumulated. A line exactly at the limit fits whole with its
	// line end, so it is neither marked truncated nor left with its \r.
	buf := make([]byte, s.maxLine+len("\r\n"))
	n := 0         // buf[:n] is a line read without its newline yet
	skip := false  // throwing away the rest of an over-long line
	armed := false // a read deadline is set
	for {
		// The rest of an over-long line is waited for as the rest of a
		// short one is: when it does not come within partialWait, what
		// comes next is a line of its own, not more of it to throw away.
		if waiting := n > 0 || skip; dl != nil && (waiting || armed) {
			var at time.Time
			if waiting {
				at = time.Now().Add(partialWait)
			}
			if dl.SetReadDeadline(at) != nil {
				dl = nil // not a pollable file: wait for newlines
			}
			armed = waiting
		}
		k, err := r.Read(buf[n:])
		end, from := n+k, n
		if skip && k > 0 {
			if i := bytes.IndexByte(buf[:end], '\n'); i < 0 {
				end = 0
			} else {
				end = copy(buf, buf[i+1:end])
				skip = false
			}
			from = 0
		}
		start := 0
		for {
			i := bytes.IndexByte(buf[from:end], '\n')
			if i < 0 {
				break
			}
			eol := from + i + 1
			// What follows in the buffer came in the same read: the worker
			// wrote it together with this line (one console.log of several
			// lines, one stack trace).
			s.pushLine(stream, buf[start:eol], eol < end)
			start, from = eol, eol
		}
		n = copy(buf, buf[start:end])
		if n == len(buf) {
			s.push(stream, cutRunes(buf[:s.maxLine]), true, false)
			n, skip = 0, true
		}
		if err == nil {
			continue
		}
		if n > 0 {
			// A line without its newline: the stream's last, or one whose
			// rest did not come within partialWait.
			s.pushLine(stream, buf[:n], false)
			n = 0
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			skip = false
			continue
		}
		if !errors.Is(err, io.EOF) {
			s.logp.Load().Debug("reading worker output stopped", zap.String("stream", stream), zap.Error(err))
		}
		return
	}
}

// pushLine pushes the line b, its line end (LF, CRLF, a lone CR at the
// end of what came) left out, cut to the line limit if it is longer.
func (s *Sink) pushLine(stream string, b []byte, more bool) {
	b = trimEOL(b)
	if len(b) > s.maxLine {
		s.push(stream, cutRunes(b[:s.maxLine]), true, more)
		return
	}
	s.push(stream, b, false, more)
}

func (s *Sink) push(stream string, b []byte, truncated, more bool) {
	// One copy serves both the tail and the queue; b belongs to the reader.
	text := string(b)
	s.remember(text)
	if stream == "stderr" && text != "" {
		s.noteStderr(text)
	}
	if truncated && s.counts != nil {
		s.counts.Truncated.Add(1)
	}
	select {
	case s.queue <- line{at: s.clock(), text: text, stream: stream, truncated: truncated, more: more}:
	default:
		s.dropped.Add(1)
		s.unreported.Add(1)
		if s.counts != nil {
			s.counts.Dropped.Add(1)
		}
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
}

func (s *Sink) write() {
	defer close(s.done)
	lastReport := time.Now()
	report := func() {
		if n := s.unreported.Swap(0); n > 0 {
			s.logp.Load().Warn(fmt.Sprintf("dropped %d lines of worker output", n), zap.Uint64("dropped", n))
		}
		lastReport = time.Now()
	}
	f := framer{pending: map[string]*entry{}, emit: s.logEntry, logRecord: s.logRecord}
	// hold fires when a held entry has waited joinWindow for its next
	// line; it is armed only while an entry is held.
	hold := time.NewTimer(time.Hour)
	hold.Stop()
	defer hold.Stop()
	armed := false
	for {
		select {
		case l, ok := <-s.queue:
			if !ok {
				f.flushAll()
				report()
				return
			}
			switch held := f.add(l); {
			case held && !armed:
				hold.Reset(joinWindow)
				armed = true
			case !held && armed:
				hold.Stop()
				armed = false
			}
			if s.unreported.Load() > 0 && (len(s.queue) == 0 || time.Since(lastReport) >= dropReportEvery) {
				f.flushAll() // the report must not come before lines read earlier
				report()
			}
		case <-hold.C:
			armed = false
			if next := f.flushStale(s.clock()); next > 0 {
				hold.Reset(next)
				armed = true
			}
		case <-s.notify:
			// Drops happen only while the queue is full; if it has emptied
			// since, no further line may come to trigger the report.
			if len(s.queue) == 0 {
				f.flushAll()
				report()
			}
		}
	}
}

// logEntry writes one plain entry: one line or several framed together.
func (s *Sink) logEntry(e *entry) {
	lvl := zapcore.InfoLevel
	text := e.text()
	if e.stream == "stderr" {
		// As in Watt: whatever a worker writes to stderr is an error,
		// but for the lines of Go's standard logger, which writes there.
		lvl = zapcore.ErrorLevel
		if e.goLog { // framing read the first line as one of Go's logger
			if l, msg, ok := goLogLine(text); ok {
				lvl, text = l, msg
			}
		}
	}
	fields := make([]zap.Field, 0, 2)
	fields = append(fields, zap.String("stream", e.stream))
	if e.truncated {
		fields = append(fields, zap.Bool("truncated", true))
	}
	s.emit(lvl, e.at, text, fields)
}

// logRecord writes a line that is a JSON object (pino and similar
// structured loggers), merged into the entry. Like Watt, wattd adds no
// stream to it: the record's own members are the entry's fields, and its
// time, when it has one, is the entry's.
func (s *Sink) logRecord(l line, rec record) {
	lvl := zapcore.InfoLevel
	if l.stream == "stderr" {
		lvl = zapcore.ErrorLevel
	}
	if rec.hasLevel {
		// The application's own logger.level is not applied here: it
		// is the level of its globalThis.platformatic.logger, which
		// writes nothing below it; a logger of the app's own (pino made
		// by the app, a framework's) keeps its lines, as under Watt.
		lvl = rec.level
	}
	at := l.at
	if !rec.at.IsZero() {
		at = rec.at
	}
	s.emit(lvl, at, rec.msg, rec.fields)
}

// emit writes through the logger's core rather than the logger: a worker's
// fatal entry is logged as fatal, and the logger would end wattd after
// writing it.
func (s *Sink) emit(lvl zapcore.Level, at time.Time, msg string, fields []zap.Field) {
	log := s.logp.Load()
	ent := zapcore.Entry{Level: lvl, Time: at, LoggerName: log.Name(), Message: msg}
	if ce := log.Core().Check(ent, nil); ce != nil {
		ce.Write(fields...)
	}
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte{'\n'})
	return bytes.TrimSuffix(b, []byte{'\r'})
}

// cutRunes drops a multi-byte character split by the length limit, so the
// kept prefix stays valid UTF-8 when the input was.
func cutRunes(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}
