package supervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/wattd/wattd/ipc"
)

// Diagnostics a worker takes of itself when asked: a heap snapshot (`wattd
// ctl heap-snapshot`, `wattpm heap-snapshot`), a CPU or heap profile
// (`wattd ctl cpu-profile`, `heap-profile`, `wattpm pprof`). wattd names a file in a directory of its
// runtime directory, the worker writes it there (V8 writes a snapshot in
// one synchronous call), answers, and wattd hands the open file to the
// caller, already removed from the directory, so that nothing is left
// behind whatever becomes of the caller.
//
// The worker's event loop is blocked while V8 writes: seconds for a large
// heap. A worker that was asked for a diagnostic and has not answered is
// not judged unresponsive, nor are its accept queues (see Stats), and its
// answer counts as a sign of life; the event-loop utilisation and delay of
// its next report, whose window holds the block, are not taken either.

// diagTimeout bounds the wait for a diagnostic. V8 wrote the snapshot of
// a heap of 115 MB (1.5 million objects) in 23 s on a 2-CPU test machine,
// and the time grows with the objects: a heap of several GiB takes many
// minutes.
const diagTimeout = 30 * time.Minute

// DiagDir is the directory of the runtime directory where workers write
// what they are asked for. Its path is given to a worker that runs under
// Node.js's permission model as one it may write.
func DiagDir(runDir string) string { return filepath.Join(runDir, "diag") }

// diagBook is a worker's diagnostics: the kinds its hello offered, and
// the requests waiting for an answer.
type diagBook struct {
	mu      sync.Mutex
	kinds   []string
	seq     uint64
	waiting map[uint64]chan ipc.Diagnose
	// asked holds the diagnostics not answered yet. A caller may stop
	// waiting (its client went away) while the worker still writes: the
	// worker stays exempt until it answers, or for diagTimeout at most,
	// since a worker may never answer; the file it writes for nobody is
	// removed when it does.
	asked map[uint64]askedDiag
	// after: the next stats report's window holds the block of a
	// diagnostic; its event-loop figures are not taken (readControl), nor
	// those of the reports that come before afterUntil, while V8 frees
	// what it took for the diagnostic.
	after      bool
	afterUntil time.Time
	// intervals are the sampling intervals of the profiles running, by
	// type.
	intervals map[string]int
}

func (b *diagBook) offer(kinds []string) {
	b.mu.Lock()
	b.kinds = slices.Clone(kinds[:min(len(kinds), 16)])
	b.mu.Unlock()
}

func (b *diagBook) takes(kind string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Contains(b.kinds, kind)
}

type askedDiag struct {
	at   time.Time
	path string
	// blocks: the diagnostic stops the worker's event loop while it is
	// taken (all but a REPL), so the reports after it are not judged.
	blocks bool
}

// busy tells whether a diagnostic was asked for, less than diagTimeout
// ago, and not answered yet.
func (b *diagBook) busy() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, a := range b.asked {
		if time.Since(a.at) < diagTimeout {
			return true
		}
		delete(b.asked, id)
	}
	return false
}

// answered hands the worker's answer to its waiter, and reports whether
// the diagnostic was asked for and not answered before: an answer to
// nothing (a made-up id) is dropped, and the file of one that nobody
// waits for any more is removed.
func (b *diagBook) answered(d *ipc.Diagnose) bool {
	if d == nil {
		return false
	}
	b.mu.Lock()
	a, ok := b.asked[d.ID]
	delete(b.asked, d.ID)
	ch, waited := b.waiting[d.ID]
	delete(b.waiting, d.ID)
	if ok && a.blocks {
		b.after, b.afterUntil = true, time.Now().Add(diagAfterglow)
	}
	b.mu.Unlock()
	if waited {
		ch <- *d // buffered
	} else if ok {
		os.Remove(a.path)
	}
	return ok
}

func (b *diagBook) setInterval(typ string, every int) {
	b.mu.Lock()
	if b.intervals == nil {
		b.intervals = map[string]int{}
	}
	b.intervals[typ] = every
	b.mu.Unlock()
}

// takeInterval returns the interval of the profile of typ that ended, 0
// when it is not known.
func (b *diagBook) takeInterval(typ string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	every := b.intervals[typ]
	delete(b.intervals, typ)
	return every
}

// takeAfter reports whether a stats report arriving now follows a
// diagnostic too closely to be judged: the first one after it, or one
// within diagAfterglow of it.
func (b *diagBook) takeAfter() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.after || time.Now().Before(b.afterUntil)
	b.after = false
	return s
}

// diagAfterglow is how long after a diagnostic a worker's event-loop
// figures are not judged: V8 may still be freeing what it built (a heap
// snapshot's graph) when the next report goes out.
const diagAfterglow = time.Second

// diagFailed logs a diagnostic that did not happen: at warn when the
// worker failed at it, at info when it refused one at odds with its state
// (a profile already being taken, none to stop: the caller gets a 409).
func diagFailed(log *zap.Logger, err error) {
	if errors.Is(err, ErrConflict) {
		log.Info("diagnostic refused", zap.Error(err))
		return
	}
	log.Warn("diagnostic failed", zap.Error(err))
}

// diagDoing says what a diagnostic of kind does, for messages.
func diagDoing(kind string) string {
	switch kind {
	case ipc.DiagHeapSnapshot:
		return "take a heap snapshot"
	case ipc.DiagCPUProfileStart:
		return "start a CPU profile"
	case ipc.DiagCPUProfileStop:
		return "stop its CPU profile"
	case ipc.DiagHeapProfileStart:
		return "start a heap profile"
	case ipc.DiagHeapProfileStop:
		return "stop its heap profile"
	case ipc.DiagREPL:
		return "open a REPL"
	}
	return "take a " + kind
}

// ask asks the worker for the diagnostic d (its ID is set here), and
// waits for its answer.
func (p *proc) ask(ctx context.Context, d *ipc.Diagnose) (ipc.Diagnose, error) {
	kind, path := d.Kind, d.Path
	if !p.diag.takes(kind) {
		who := "a Node.js worker does"
		if slices.Contains(ipc.SDKDiagnostics, kind) {
			who += ", and a Go program through the SDK of package ipc"
		}
		return ipc.Diagnose{}, fmt.Errorf("%w: the worker cannot %s: its runtime does not offer it on the control channel (%s; see worker-protocol.md, diagnose)", ErrConflict, diagDoing(kind), who)
	}
	ch := make(chan ipc.Diagnose, 1)
	b := &p.diag
	b.mu.Lock()
	b.seq++
	id := b.seq
	if b.waiting == nil {
		b.waiting, b.asked = map[uint64]chan ipc.Diagnose{}, map[uint64]askedDiag{}
	}
	b.waiting[id], b.asked[id] = ch, askedDiag{at: time.Now(), path: path, blocks: kind != ipc.DiagREPL}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.waiting, id)
		b.mu.Unlock()
	}()
	d.ID = id
	if err := p.send(&ipc.Message{Type: ipc.TypeDiagnose, Diagnose: d}); err != nil {
		b.mu.Lock()
		delete(b.asked, id)
		b.mu.Unlock()
		return ipc.Diagnose{}, fmt.Errorf("ask the worker to %s: %w", diagDoing(kind), err)
	}
	select {
	case a := <-ch:
		if a.Error != "" {
			msg := fmt.Sprintf("the worker could not %s: %s", diagDoing(kind), a.Error)
			if a.Conflict {
				// A refusal for what it is doing (a profile already
				// taken, none taken): the caller's to retry, not a failure.
				return a, conflict(msg)
			}
			return a, errors.New(msg)
		}
		return a, nil
	case <-p.exited:
		return ipc.Diagnose{}, fmt.Errorf("%w: the worker exited (%s) before it could %s", ErrConflict, p.exitReason(), diagDoing(kind))
	case <-ctx.Done():
		return ipc.Diagnose{}, ctx.Err()
	}
}

// HeapSnapshot is a heap snapshot a worker is taking, streamed to wattd
// through a FIFO as V8 writes it: it is never a file. A snapshot is about
// the size of the heap; as a file in the runtime directory (a tmpfs
// under /run on most machines) it would take that much memory, charged
// to the worker's own memory cgroup, and kill a worker with a memory
// limit at the moment its memory is looked into. V8 writes it from the
// blocked event loop; the worker's writes wait for the reader, so a
// reader that stops must close (Close), which ends the worker's write
// with an error and its block with it.
type HeapSnapshot struct {
	// Worker is the slot index of the worker taking it.
	Worker int

	first  []byte
	r      *os.File
	answer chan error // the worker's answer, then closed
	cancel context.CancelFunc
	end    func() // removes the FIFO and closes r, once
}

// heapChunk is the size of the reads from the FIFO.
const heapChunk = 256 << 10

// StartHeapSnapshot has a worker of app id (worker: the slot index; -1:
// the lowest ready one) take a V8 heap snapshot, and returns once its
// first bytes came, or with the error that came first (the worker
// refused, exited, did not start within diagTimeout). The caller then
// calls WriteTo, or Close to abandon it. ctx ends it too.
func (rt *Runtime) StartHeapSnapshot(ctx context.Context, id string, worker int) (*HeapSnapshot, error) {
	p, s, err := rt.diagWorker(id, worker)
	if err != nil {
		return nil, err
	}
	h, err := rt.startHeapSnapshot(ctx, p, s)
	if err != nil {
		return nil, fmt.Errorf("heap snapshot of app %q worker %d: %w", s.app.id, s.index, err)
	}
	return h, nil
}

func (rt *Runtime) startHeapSnapshot(ctx context.Context, p *proc, s *slot) (*HeapSnapshot, error) {
	kind := ipc.DiagHeapSnapshot
	dir, err := rt.diagDirFor(ctx, p, kind)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%d-%d.heapsnapshot", s.app.id, s.index, time.Now().UnixNano()))
	if err := unix.Mkfifo(path, 0o600); err != nil {
		return nil, fmt.Errorf("make its FIFO: %w", err)
	}
	// Both ends, without waiting: the reader, and a writer of wattd's own
	// that keeps the reader from seeing an end before the worker has
	// opened the FIFO. It is closed once the worker answered, so that the
	// reader's end of file means every byte has come.
	r, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	keep, err := os.OpenFile(path, os.O_WRONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		os.Remove(path)
		r.Close()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, diagTimeout)
	h := &HeapSnapshot{Worker: s.index, r: r, answer: make(chan error, 1), cancel: cancel}
	h.end = sync.OnceFunc(func() {
		// The path goes first: a worker that opens it after this makes
		// a file (removed when it answers), where opening a FIFO without
		// a reader would block it for good.
		os.Remove(path)
		r.Close()
	})
	log := s.log.With(zap.Int("pid", p.pid), zap.String("diagnostic", kind))
	log.Info("asking the worker for a diagnostic")
	start := time.Now()
	go func() {
		_, err := p.ask(ctx, &ipc.Diagnose{Kind: kind, Path: path})
		keep.Close()
		if err != nil {
			diagFailed(log, err)
			h.end() // nothing more is read: a worker still writing stops
		} else {
			log.Info("diagnostic taken", zap.Duration("took", time.Since(start).Round(time.Millisecond)))
		}
		h.answer <- err
		close(h.answer)
	}()
	buf := make([]byte, heapChunk)
	n, err := r.Read(buf)
	if n > 0 {
		h.first = buf[:n]
		return h, nil
	}
	// Nothing came: the worker's answer says why (the reader sees an end
	// of file, or an error, only once the ask is over).
	aerr := <-h.answer
	h.Close()
	if aerr != nil {
		return nil, aerr
	}
	if err == nil || errors.Is(err, io.EOF) {
		return nil, errors.New("the worker answered, but wrote nothing")
	}
	return nil, err
}

// WriteTo copies the snapshot to w as the worker writes it, and returns
// once it is whole, or with an error (the worker failed or exited, w
// failed): what was written before is then a part only. The snapshot is
// closed either way.
func (h *HeapSnapshot) WriteTo(w io.Writer) (int64, error) {
	// On every return: when w failed, the worker's next write fails and
	// its block ends (wattd does not wait for its answer; a late one is
	// dropped, see answered).
	defer h.Close()
	rest := io.MultiReader(bytes.NewReader(h.first), onlyReader{h.r})
	h.first = nil
	n, err := io.CopyBuffer(w, rest, make([]byte, heapChunk))
	if err != nil && !errors.Is(err, os.ErrClosed) {
		return n, err
	}
	// The end of file comes only once the worker answered; a reader
	// closed under the copy, by the ask's end (the worker failed or
	// exited, or ctx ended): its error says more.
	if aerr := <-h.answer; aerr != nil {
		return n, aerr
	}
	return n, err
}

// Close abandons the snapshot (a no-op after WriteTo): the worker's writes
// fail, and it goes on.
func (h *HeapSnapshot) Close() {
	h.end()
	h.cancel()
}

// onlyReader hides the ReaderFrom and WriterTo of what it wraps, so that
// a copy reads through Read.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// diagDirFor is the directory where worker p writes, or connects, for a
// diagnostic of kind, made if need be; when p does not take kind, it is
// the refusal that ask gives, and nothing is made for nothing.
func (rt *Runtime) diagDirFor(ctx context.Context, p *proc, kind string) (string, error) {
	if !p.diag.takes(kind) {
		_, err := p.ask(ctx, &ipc.Diagnose{Kind: kind})
		return "", err
	}
	dir := DiagDir(rt.dir.Path)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", err
	}
	return dir, nil
}

// diagFile asks worker p of slot s for a diagnostic that it writes to a
// file (heap snapshot, profile), and returns the file open and already
// removed, with the format the worker said it has ("" by default).
func (rt *Runtime) diagFile(ctx context.Context, p *proc, s *slot, kind, ext string) (*os.File, string, error) {
	dir, err := rt.diagDirFor(ctx, p, kind)
	if err != nil {
		return nil, "", err
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%d-%d.%s", s.app.id, s.index, time.Now().UnixNano(), ext))
	// Whatever happens (an error, a worker that answers after the
	// timeout), the file does not stay.
	defer os.Remove(path)
	ctx, cancel := context.WithTimeout(ctx, diagTimeout)
	defer cancel()
	start := time.Now()
	log := s.log.With(zap.Int("pid", p.pid), zap.String("diagnostic", kind))
	log.Info("asking the worker for a diagnostic")
	a, err := p.ask(ctx, &ipc.Diagnose{Kind: kind, Path: path})
	if err != nil {
		diagFailed(log, err)
		return nil, "", err
	}
	// Not waiting for a writer, should the worker have put a FIFO there.
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, "", fmt.Errorf("the worker answered, but: %w", err)
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, "", errors.New("the worker answered, but left no file where it was to write")
	}
	size := fi.Size()
	log.Info("diagnostic taken", zap.Int64("bytes", size), zap.Duration("took", time.Since(start).Round(time.Millisecond)))
	return f, a.Format, nil
}

// diagWorker is the worker of app id's slot worker (-1: the lowest ready
// one) to ask for a diagnostic, and its slot.
func (rt *Runtime) diagWorker(id string, worker int) (*proc, *slot, error) {
	a, ok := rt.lookup(id)
	if !ok {
		return nil, nil, rt.notFound(id)
	}
	slots := a.slotList()
	have := make([]string, 0, len(slots))
	for _, s := range slots {
		have = append(have, strconv.Itoa(s.index))
		if worker >= 0 && s.index != worker {
			continue
		}
		s.mu.Lock()
		cur, st := s.cur, s.state
		s.mu.Unlock()
		p, ok := cur.(*proc)
		if ok && p != nil && st == StateReady {
			return p, s, nil
		}
		if worker >= 0 {
			return nil, nil, fmt.Errorf("%w: app %q worker %d is not ready (state %s); see wattd ctl ps", ErrConflict, id, worker, s.getState())
		}
	}
	if worker >= 0 {
		return nil, nil, fmt.Errorf("%w %q worker %d (its workers: %s)", ErrNotFound, id, worker, strings.Join(have, ", "))
	}
	return nil, nil, fmt.Errorf("%w: app %q has no ready worker; see wattd ctl ps", ErrConflict, id)
}

// Profile types: V8's CPU profiler, its sampling heap profiler.
const (
	ProfileCPU  = "cpu"
	ProfileHeap = "heap"
)

// profileKinds are the diagnose kinds that start and stop a profile of
// each type, and what the file wattd has the worker write is called.
var profileKinds = map[string]struct{ start, stop, ext string }{
	ProfileCPU:  {ipc.DiagCPUProfileStart, ipc.DiagCPUProfileStop, "cpuprofile"},
	ProfileHeap: {ipc.DiagHeapProfileStart, ipc.DiagHeapProfileStop, "heapprofile"},
}

// StartProfile starts a profile of typ (ProfileCPU, ProfileHeap) in worker
// (-1: the lowest ready one) of app id, sampling every interval
// (microseconds for CPU, bytes for the heap), and returns the worker's
// index. The profile runs until StopProfile, or the worker's end.
func (rt *Runtime) StartProfile(ctx context.Context, id string, worker int, typ string, interval int) (int, error) {
	k, ok := profileKinds[typ]
	if !ok {
		return 0, fmt.Errorf("%w: no profile of type %q", ErrInvalidConfig, typ)
	}
	p, s, err := rt.diagWorker(id, worker)
	if err != nil {
		return 0, err
	}
	interval = max(interval, 1)
	ctx, cancel := context.WithTimeout(ctx, diagTimeout)
	defer cancel()
	d := &ipc.Diagnose{Kind: k.start}
	if typ == ProfileCPU {
		d.IntervalMicros = interval
	} else {
		d.IntervalBytes = interval
	}
	if _, err := p.ask(ctx, d); err != nil {
		return 0, fmt.Errorf("%s profile of app %q worker %d: %w", typ, id, s.index, err)
	}
	p.diag.setInterval(typ, interval)
	s.log.Info("profile started", zap.Int("pid", p.pid), zap.String("type", typ), zap.Int("interval", interval))
	return s.index, nil
}

// Profile is a profile a worker took.
type Profile struct {
	// File holds it, open at its start and no longer in any directory:
	// V8's JSON (.cpuprofile, .heapprofile), or pprof when Format says so.
	File   *os.File
	Format string // "pprof" when the worker wrote pprof (a Go worker); "" for V8's JSON
	// Interval is the sampling interval it was started with (µs, bytes;
	// 0: not known), Worker the worker's index.
	Interval, Worker int
}

// StopProfile stops the profile of typ of worker (-1: the lowest ready
// one) of app id and returns it.
func (rt *Runtime) StopProfile(ctx context.Context, id string, worker int, typ string) (*Profile, error) {
	k, ok := profileKinds[typ]
	if !ok {
		return nil, fmt.Errorf("%w: no profile of type %q", ErrInvalidConfig, typ)
	}
	p, s, err := rt.diagWorker(id, worker)
	if err != nil {
		return nil, err
	}
	f, format, err := rt.diagFile(ctx, p, s, k.stop, k.ext)
	if err != nil {
		return nil, fmt.Errorf("%s profile of app %q worker %d: %w", typ, id, s.index, err)
	}
	return &Profile{File: f, Format: format, Interval: p.diag.takeInterval(typ), Worker: s.index}, nil
}
