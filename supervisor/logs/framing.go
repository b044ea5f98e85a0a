package logs

import (
	"regexp"
	"strings"
	"time"
)

// Framing: which lines of worker output make one log entry.
//
// A program writes a multi-line message (a stack trace, an object printed
// by console.log, Node's report of an uncaught exception) with one write,
// and Watt logs what one write of a worker printed as one entry. Over a
// pipe, wattd sees reads, not writes: lines that came in one read were
// written together (or so close together that the pipe held both), so they
// make one entry. A write that a read splits, or a trace printed in several
// writes, is caught by the shape of its lines: an indented line, a stack
// frame or a closing bracket continues the entry before it when it comes
// within joinWindow. JSON lines are records of their own and are never
// joined, and a line that starts with the time Go's standard logger writes
// starts an entry.
//
// Only an entry that may go on waits, and for joinWindow at most (a Go
// runtime report: goReportWindow): one whose read had more after it, whose
// last line is a stack frame, indented, or opens a block, or that is an
// error's first line. A plain single line is logged as soon as the writer
// takes it, so framing adds no delay to ordinary output.

const (
	// joinWindow is how long an entry that may go on waits for its next
	// line, and how close a continuation line from a later read must come.
	joinWindow = 20 * time.Millisecond
	// goReportWindow is joinWindow for the Go runtime's report of a panic
	// or a fatal error: the dying runtime prints it in dozens of small
	// writes, and on a loaded machine the process may be descheduled
	// between two of them for longer than joinWindow. Nothing else comes
	// from a process in the middle of its report, so the wait costs only
	// the delay of that one entry.
	goReportWindow = 100 * time.Millisecond
	// maxEntryLines and maxEntryBytes bound one entry, so that a flood
	// read in large chunks is still logged in pieces of sensible size.
	maxEntryLines = 200
	maxEntryBytes = 64 << 10
)

// entry is plain worker output being framed.
type entry struct {
	stream    string
	at        time.Time // arrival of the first line: the entry's time
	last      time.Time // arrival of the last line
	lines     []string
	size      int
	truncated bool
	more      bool // the last line's read had more after it
	goReport  bool // the first line heads the Go runtime's report of a panic or a fatal error
	stack     bool // a line is a stack frame ("    at f (file:1:2)"): Node.js's "Node.js vX" may follow
	goLog     bool // the first line is one of Go's standard logger (see goLogLine)
}

func (e *entry) text() string {
	lines := e.lines
	// A message that ends with a newline prints an empty last line.
	for len(lines) > 1 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return strings.Join(lines, "\n")
}

func (e *entry) add(l line) {
	if len(e.lines) == 0 {
		_, _, e.goLog = cutGoLogStart(l.text)
	}
	e.stack = e.stack || strings.HasPrefix(strings.TrimLeft(l.text, " \t"), "at ")
	e.lines = append(e.lines, l.text)
	e.size += len(l.text) + 1
	e.last, e.more = l.at, l.more
	e.truncated = e.truncated || l.truncated
}

// accepts tells whether l continues e.
func (e *entry) accepts(l line) bool {
	if len(e.lines) >= maxEntryLines || e.size+len(l.text) > maxEntryBytes {
		return false
	}
	if _, _, ok := cutGoLogStart(l.text); ok {
		// Go's standard logger writes each entry at once, starting with
		// its time: two such lines in one read are two entries.
		return false
	}
	if e.goLog && (goReportHead.MatchString(l.text) || errorHeader.MatchString(l.text)) {
		// The entry is logged at the level of its logger's line, info
		// for log.Printf: the Go runtime's report of a panic (log.Panic
		// prints its message just before it) or an error printed after
		// it in the same read is an entry of its own, an error.
		return false
	}
	return e.more || (continuation(l.text) || e.goReport && goReportLine.MatchString(l.text) ||
		e.stack && (l.text == "" || nodeVersion.MatchString(l.text))) && l.at.Sub(e.last) <= e.window()
}

// window is how long e waits for its next line.
func (e *entry) window() time.Duration {
	if e.goReport {
		return goReportWindow
	}
	return joinWindow
}

// nodeVersion matches the line Node.js ends its report of an uncaught
// error with, after a blank line: "Node.js v20.20.2". Node writes it on its
// own, so it may come in a later read than the stack it closes.
var nodeVersion = regexp.MustCompile(`^Node\.js v\d+\.\d+\.\d+`)

// open tells whether e may go on in a later read.
func (e *entry) open() bool {
	if e.more || e.goReport {
		return true
	}
	last := e.lines[len(e.lines)-1]
	if e.stack && last == "" {
		return true // Node's version line may follow
	}
	if continuation(last) || len(e.lines) == 1 && errorHeader.MatchString(last) {
		return true
	}
	t := strings.TrimSpace(last)
	return t != "" && strings.ContainsAny(t[len(t)-1:], "{[(:,")
}

// errorHeader matches the first line of a printed error ("Error: boom",
// "TypeError: x is not a function", "Uncaught MongoServerError"), whose
// stack may come in a later write.
var errorHeader = regexp.MustCompile(`^(Uncaught )?([A-Za-z_$][\w$.]*)?(Error|Exception)\b`)

// goReportHead matches the first line of the Go runtime's report of a
// panic or a fatal error ("panic: boom", "fatal error: concurrent map
// writes"). The runtime prints the report with many small unbuffered
// writes, so its lines come in several reads, and those of its lines that
// are not indented (the blank line after the head, "goroutine 1
// [running]:", "main.main()", "created by ...") are not continuations by
// their shape: such an entry takes them too (goReportLine), and stays open
// until no line has come for goReportWindow.
var goReportHead = regexp.MustCompile(`^(panic: |fatal error: )`)

// goReportLine matches the unindented lines of a Go runtime report: blank
// lines, goroutine headers, function lines ("net/http.(*conn).serve(...)",
// generic ones with [...]), "created by ...", "...additional frames
// elided...", "[signal SIGSEGV: ...]", and go run's "exit status 2".
var goReportLine = regexp.MustCompile(`^($|goroutine \d+ |created by |\.\.\.|\[signal |exit status \d+$|[\w./*()\[\],%-]+\(.*\)$)`)

// continuation tells whether a line, by its shape, belongs to the entry
// before it: indented (stack frames, object members, a cause), a bare
// stack frame, a closing bracket, or the caret under a failing line.
func continuation(text string) bool {
	if text == "" {
		return false
	}
	if text[0] == ' ' || text[0] == '\t' {
		return strings.TrimSpace(text) != ""
	}
	if strings.HasPrefix(text, "at ") {
		return true
	}
	t := strings.TrimRight(text, ",;")
	return t != "" && strings.Trim(t, "}])") == "" || strings.Trim(text, "^ ") == "" && strings.Contains(text, "^")
}

// framer groups the lines of one worker's streams into entries. It is used
// by the Sink's writer goroutine alone.
type framer struct {
	pending   map[string]*entry // by stream
	emit      func(*entry)
	logRecord func(line, record)
}

// add takes the next line and reports whether an entry is held for a
// continuation (the caller then flushes it after joinWindow).
func (f *framer) add(l line) bool {
	p := f.pending[l.stream]
	if !l.truncated {
		if rec, ok := parseRecord(l.text); ok {
			f.flush(l.stream)
			f.logRecord(l, rec)
			return f.held()
		}
	}
	if p != nil && p.accepts(l) {
		p.add(l)
	} else {
		f.flush(l.stream)
		p = &entry{stream: l.stream, at: l.at, goReport: goReportHead.MatchString(l.text)}
		p.add(l)
		f.pending[l.stream] = p
	}
	if !p.open() {
		f.flush(l.stream)
	}
	return f.held()
}

func (f *framer) held() bool { return len(f.pending) > 0 }

func (f *framer) flush(stream string) {
	if p := f.pending[stream]; p != nil {
		delete(f.pending, stream)
		f.emit(p)
	}
}

// flushStale writes the held entries whose last line came their window ago
// or earlier, and returns how long until the next of the others is due (0 when
// none is held).
func (f *framer) flushStale(now time.Time) time.Duration {
	var next time.Duration
	for stream, p := range f.pending {
		due := p.last.Add(p.window()).Sub(now)
		if due <= 0 {
			f.flush(stream)
			continue
		}
		if next == 0 || due < next {
			next = due
		}
	}
	return next
}

// flushAll writes every held entry, oldest first.
func (f *framer) flushAll() {
	for len(f.pending) > 0 {
		var first *entry
		for _, p := range f.pending {
			if first == nil || p.at.Before(first.at) {
				first = p
			}
		}
		f.flush(first.stream)
	}
}
