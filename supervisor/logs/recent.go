package logs

import (
	"sort"
	"sync"
	"sync/atomic"

	"go.uber.org/zap/zapcore"
)

// Defaults of RecentOptions: per application (and for wattd's own
// entries), the last 1000 lines, and never more than 1 MiB of them.
const (
	DefaultRecentLines = 1000
	DefaultRecentBytes = 1 << 20
	// followerQueue is how many lines a follower may fall behind before
	// lines are dropped for it (and only for it).
	followerQueue = 1024
)

// RecentOptions bounds a Recent buffer. Zero values select the defaults.
type RecentOptions struct {
	Lines int // lines kept per application
	Bytes int // bytes of lines kept per application
}

// Line is one log entry kept by Recent, in the pino format.
type Line struct {
	Seq    uint64 // order among every line of the runtime
	App    string // "" for wattd's own entries about no application
	Worker int    // -1 when the entry is about no single worker
	JSON   []byte // the entry, without its newline; never modified
}

// Filter selects lines: App "" selects every line, Worker -1 every
// worker of App.
type Filter struct {
	App    string
	Worker int
}

func (f Filter) match(l *Line) bool {
	return f.App == "" || l.App == f.App && (f.Worker < 0 || l.Worker == f.Worker)
}

// Recent keeps the most recent log lines of each application, and of
// wattd itself, in memory for `wattd ctl logs`, and hands new lines to
// followers. Logging never waits for a follower: a follower that does not
// keep up loses lines, is told how many, and nobody else notices.
type Recent struct {
	lines, bytes int

	mu        sync.Mutex // guards everything below
	seq       uint64
	rings     map[string]*lineRing
	followers map[*Follower]struct{}
}

// NewRecent makes an empty buffer.
func NewRecent(opts RecentOptions) *Recent {
	if opts.Lines <= 0 {
		opts.Lines = DefaultRecentLines
	}
	if opts.Bytes <= 0 {
		opts.Bytes = DefaultRecentBytes
	}
	return &Recent{lines: opts.Lines, bytes: opts.Bytes, rings: map[string]*lineRing{}, followers: map[*Follower]struct{}{}}
}

// lineRing is one application's lines, oldest first from head.
type lineRing struct {
	lines []Line
	head  int
	bytes int
}

func (r *lineRing) push(l Line, maxLines, maxBytes int) {
	r.lines = append(r.lines, l)
	r.bytes += len(l.JSON)
	for len(r.lines)-r.head > maxLines || r.bytes > maxBytes && len(r.lines)-r.head > 1 {
		r.bytes -= len(r.lines[r.head].JSON)
		r.lines[r.head] = Line{}
		r.head++
	}
	// Reuse the front of the slice once half of it is dead.
	if r.head > 0 && r.head >= len(r.lines)/2 {
		n := copy(r.lines, r.lines[r.head:])
		clear(r.lines[n:])
		r.lines = r.lines[:n]
		r.head = 0
	}
}

func (r *lineRing) live() []Line { return r.lines[r.head:] }

func (b *Recent) add(app string, worker int, data []byte) {
	l := Line{App: app, Worker: worker, JSON: append([]byte(nil), data...)}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	l.Seq = b.seq
	r := b.rings[app]
	if r == nil {
		r = &lineRing{}
		b.rings[app] = r
	}
	r.push(l, b.lines, b.bytes)
	for f := range b.followers {
		if !f.filter.match(&l) {
			continue
		}
		select {
		case f.c <- l:
		default:
			f.missed.Add(1)
		}
	}
}

// Forget drops the lines kept for app, an application that is gone (a
// reload removed it): without it every application id a long-running
// wattd ever ran would keep up to the buffer's bound in memory for good.
// Lines logged for app later start a new buffer.
func (b *Recent) Forget(app string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.rings, app)
}

// Tail returns the last n lines that f selects, oldest first.
func (b *Recent) Tail(f Filter, n int) []Line {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tail(f, n)
}

func (b *Recent) tail(f Filter, n int) []Line {
	if n <= 0 {
		return nil
	}
	var out []Line
	for app, r := range b.rings {
		if f.App != "" && app != f.App {
			continue
		}
		live := r.live()
		taken := 0
		for i := len(live) - 1; i >= 0 && taken < n; i-- {
			if f.match(&live[i]) {
				out = append(out, live[i])
				taken++
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

// Follow returns the last n lines that f selects and a follower that
// receives every later one, with nothing lost or repeated in between.
// The follower must be closed.
func (b *Recent) Follow(f Filter, n int) ([]Line, *Follower) {
	fo := &Follower{b: b, filter: f, c: make(chan Line, followerQueue)}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.followers[fo] = struct{}{}
	return b.tail(f, n), fo
}

// Followers is how many followers are open.
func (b *Recent) Followers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.followers)
}

// Follower receives new lines as they are logged.
type Follower struct {
	b      *Recent
	filter Filter
	c      chan Line
	missed atomic.Uint64
}

// Lines delivers the lines; it is never closed.
func (f *Follower) Lines() <-chan Line { return f.c }

// Missed returns how many lines were dropped for this follower since the
// last call, because it had fallen followerQueue lines behind.
func (f *Follower) Missed() uint64 { return f.missed.Swap(0) }

// Close stops delivery.
func (f *Follower) Close() {
	f.b.mu.Lock()
	delete(f.b.followers, f)
	f.b.mu.Unlock()
}

// lineCore encodes entries in the pino format and writes them to an
// output, to a Recent buffer, or both, encoding each entry once.
type lineCore struct {
	zapcore.LevelEnabler
	enc    zapcore.Encoder
	out    zapcore.WriteSyncer // nil: the buffer only
	recent *Recent             // nil: the output only
	export func([]byte)        // nil: none (Setup.Export)
	app    string              // from With
	worker int                 // from With; -1 when none
	// journal: out is journald's stream (see journalStream), and each line
	// starts with its syslog priority, <3> for an error, which journald
	// takes off and keeps as the entry's PRIORITY.
	journal bool
}

// syslogPriority is the priority journald files a line of level l under:
// debug 7, info 6, warn 4, error 3, worse 2.
func syslogPriority(l zapcore.Level) byte {
	switch {
	case l < zapcore.InfoLevel:
		return '7'
	case l == zapcore.InfoLevel:
		return '6'
	case l == zapcore.WarnLevel:
		return '4'
	case l == zapcore.ErrorLevel:
		return '3'
	}
	return '2'
}

func newLineCore(lvl zapcore.LevelEnabler, out zapcore.WriteSyncer, recent *Recent, export func([]byte)) *lineCore {
	return &lineCore{LevelEnabler: lvl, enc: newPinoEncoder(), out: out, recent: recent, export: export, worker: -1}
}

func (c *lineCore) With(fields []zapcore.Field) zapcore.Core {
	clone := *c
	clone.enc = c.enc.Clone()
	for _, f := range fields {
		f.AddTo(clone.enc)
	}
	clone.app, clone.worker = identity(fields, c.app, c.worker)
	return &clone
}

// identity finds the app and worker fields among fields.
func identity(fields []zapcore.Field, app string, worker int) (string, int) {
	for _, f := range fields {
		switch {
		case f.Key == appKey && f.Type == zapcore.StringType:
			app = f.String
		case f.Key == workerKey && isInt(f.Type):
			worker = int(f.Integer)
		}
	}
	return app, worker
}

func (c *lineCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(ent.Level) {
		return ce.AddCore(ent, c)
	}
	return ce
}

func (c *lineCore) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	buf, err := c.enc.EncodeEntry(ent, fields)
	if err != nil {
		return err
	}
	defer buf.Free()
	if c.recent != nil || c.export != nil {
		b := buf.Bytes()
		if n := len(b); n > 0 && b[n-1] == '\n' {
			b = b[:n-1]
		}
		if c.recent != nil {
			app, worker := identity(fields, c.app, c.worker)
			c.recent.add(app, worker, b)
		}
		if c.export != nil {
			c.export(b)
		}
	}
	if c.out != nil {
		line := buf.Bytes()
		if c.journal {
			// One write, so that no other line comes between.
			line = append([]byte{'<', syslogPriority(ent.Level), '>'}, line...)
		}
		if _, err := c.out.Write(line); err != nil {
			return err
		}
		if ent.Level > zapcore.ErrorLevel {
			_ = c.out.Sync()
		}
	}
	return nil
}

func (c *lineCore) Sync() error {
	if c.out != nil {
		return c.out.Sync()
	}
	return nil
}
