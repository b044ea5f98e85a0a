package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wattd/wattd/ipc"
)

// Diagnostics a worker takes of itself when asked: a heap snapshot (`wattd
// ctl heap-snapshot`, `wattpm heap-snapshot`). wattd names a file in a
// directory of its runtime directory, the worker writes it there (V8 does,
// in one synchronous call), answers, and wattd hands the open file to the
// caller, already removed from the directory, so that nothing is left
// behind whatever becomes of the caller.
//
// The worker's event loop is blocked while V8 writes: seconds for a large
// heap. A worker that was asked for a diagnostic and has not answered is
// not judged unresponsive, nor are its accept queues (see Stats), and its
// answer counts as a sign of life; the event-loop utilisation and delay of
// its next report, whose window holds the block, are not taken either.

// diagTimeout bounds the wait for a diagnostic: V8 writes a snapshot of a
// heap of several GiB in well under a minute on a slow machine.
const diagTimeout = 5 * time.Minute

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
	// diagnostic; its event-loop figures are not taken (readControl).
	after bool
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
	b.after = b.after || ok
	b.mu.Unlock()
	if waited {
		ch <- *d // buffered
	} else if ok {
		os.Remove(a.path)
	}
	return ok
}

// takeAfter reports, once, that a diagnostic ended since the last
// report.
func (b *diagBook) takeAfter() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.after
	b.after = false
	return s
}

// diagnose asks the worker for a diagnostic of kind written to path, and
// waits for its answer.
func (p *proc) diagnose(ctx context.Context, kind, path string) error {
	if !p.diag.takes(kind) {
		return fmt.Errorf("%w: the worker does not take a %s (its runtime does not offer it on the control channel)", ErrConflict, kind)
	}
	ch := make(chan ipc.Diagnose, 1)
	b := &p.diag
	b.mu.Lock()
	b.seq++
	id := b.seq
	if b.waiting == nil {
		b.waiting, b.asked = map[uint64]chan ipc.Diagnose{}, map[uint64]askedDiag{}
	}
	b.waiting[id], b.asked[id] = ch, askedDiag{at: time.Now(), path: path}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.waiting, id)
		b.mu.Unlock()
	}()
	if err := p.send(&ipc.Message{Type: ipc.TypeDiagnose, Diagnose: &ipc.Diagnose{ID: id, Kind: kind, Path: path}}); err != nil {
		b.mu.Lock()
		delete(b.asked, id)
		b.mu.Unlock()
		return fmt.Errorf("ask for a %s: %w", kind, err)
	}
	select {
	case d := <-ch:
		if d.Error != "" {
			return fmt.Errorf("the worker could not take a %s: %s", kind, d.Error)
		}
		return nil
	case <-p.exited:
		return fmt.Errorf("%w: the worker exited (%s) before it finished its %s", ErrConflict, p.exitReason(), kind)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// HeapSnapshot has a worker of app take a V8 heap snapshot and returns it
// as an open file, at its start, that is no longer in any directory: the
// caller reads it and closes it. worker is the slot index; -1 picks the
// lowest that is ready.
func (rt *Runtime) HeapSnapshot(ctx context.Context, id string, worker int) (*os.File, int, error) {
	p, s, err := rt.diagWorker(id, worker)
	if err != nil {
		return nil, 0, err
	}
	index := s.index
	dir := DiagDir(rt.dir.Path)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, 0, fmt.Errorf("heap snapshot: %w", err)
	}
	path := filepath.Join(dir, fmt.Sprintf("heap-%s-%d-%d.heapsnapshot", id, index, time.Now().UnixNano()))
	// Whatever happens (an error, a worker that answers after the
	// timeout), the file does not stay.
	defer os.Remove(path)
	ctx, cancel := context.WithTimeout(ctx, diagTimeout)
	defer cancel()
	start := time.Now()
	log := s.log.With(zap.Int("pid", p.pid))
	log.Info("taking a heap snapshot")
	if err := p.diagnose(ctx, ipc.DiagHeapSnapshot, path); err != nil {
		log.Warn("heap snapshot failed", zap.Error(err))
		return nil, 0, fmt.Errorf("heap snapshot of app %q worker %d: %w", id, index, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("heap snapshot of app %q worker %d: the worker answered, but: %w", id, index, err)
	}
	var size int64
	if fi, err := f.Stat(); err == nil {
		size = fi.Size()
	}
	log.Info("heap snapshot taken", zap.Int64("bytes", size), zap.Duration("took", time.Since(start).Round(time.Millisecond)))
	return f, index, nil
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
