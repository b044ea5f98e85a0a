package logs

import (
	"bytes"
	"errors"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap/zapcore"
)

// wattd's output is often a pipe (`wattd start | head`, a log shipper that
// restarts). When its reader goes away, Go's default is to kill the process
// with SIGPIPE on the next write to fd 1 or 2: the daemon would die without
// stopping its workers or removing its runtime directory. Instead, writes
// fail with EPIPE and the lines are dropped and counted.

// KeepRunningOnBrokenPipe makes a write to a closed stdout or stderr fail
// with EPIPE instead of ending the process. It asks for SIGPIPE through
// signal.Notify rather than signal.Ignore: an ignored signal stays ignored
// in every child wattd starts, while a notified one is reset to the default
// in them, so workers keep the SIGPIPE behaviour they expect.
func KeepRunningOnBrokenPipe() {
	// Nobody reads the channel: delivery never blocks, and a full
	// channel just drops the notification.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
}

// outputDropped counts the entries lost by every output made by New. A
// process has one stdout and one stderr, so one count serves.
var outputDropped atomic.Uint64

// OutputDropped is how many log entries could not be written to wattd's
// output since the start.
func OutputDropped() uint64 { return outputDropped.Load() }

// output writes log entries to the daemon's output and drops them when the
// write fails, so a closed output costs neither the process nor a retry per
// entry. It reports success to zap either way: zap would otherwise report
// each failure on stderr, which is usually the very file that failed.
//
// Unless the output is a regular file, the writes happen on a goroutine of
// their own, behind a queue of at most maxQueued bytes (those being written
// included): a reader that stops reading (a terminal paused with Ctrl-S, a
// stalled log shipper, a full journald pipe) would otherwise block the
// write, and with it every goroutine that logs, the one that
// restarts a crashed worker included. Once the queue is full, entries are
// dropped and counted until the reader catches up. Sync waits for the
// queue to be written, at most syncWait once per stall, so that the last
// entries reach a reader that reads before wattd exits, and a stalled one
// cannot hold the exit up.
type output struct {
	ws     zapcore.WriteSyncer
	broken atomic.Bool // the reader of a pipe went away; it never comes back

	mu     sync.Mutex
	queue  [][]byte // entries not yet taken by the writer, oldest first
	queued int      // their bytes and those of the entries being written
	wake   chan struct{}
	idle   chan struct{} // closed when queue and writer are done, then nil until the next entry
	// stalled: a Sync gave up waiting and the queue has not been written
	// since; later Syncs do not wait (an entry at fatal level syncs, and a
	// worker crashing in a loop prints one each time).
	stalled atomic.Bool
}

// maxQueued bounds the bytes waiting for a slow reader; syncWait bounds
// how long Sync waits for them.
const (
	maxQueued = 4 << 20
	syncWait  = 2 * time.Second
)

// newOutput makes the output of ws, writing on a goroutine of its own when
// async: a regular file does not stall the way a pipe, a socket or a
// terminal can, and is written to directly.
func newOutput(ws zapcore.WriteSyncer, async bool) *output {
	o := &output{ws: ws}
	if async {
		o.wake = make(chan struct{}, 1)
		go o.run()
	}
	return o
}

func (o *output) Write(p []byte) (int, error) {
	if o.broken.Load() {
		outputDropped.Add(1)
		return len(p), nil
	}
	if o.wake == nil {
		o.write(p, 1)
		return len(p), nil
	}
	o.mu.Lock()
	if o.queued+len(p) > maxQueued {
		o.mu.Unlock()
		outputDropped.Add(1)
		return len(p), nil
	}
	o.queue = append(o.queue, bytes.Clone(p)) // zap reuses p
	o.queued += len(p)
	if o.idle == nil {
		o.idle = make(chan struct{})
	}
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

// run writes what is queued, in order, in writes of up to 64 KiB.
func (o *output) run() {
	var buf []byte
	for range o.wake {
		for {
			o.mu.Lock()
			q := o.queue
			o.queue = nil
			if len(q) == 0 {
				if o.idle != nil {
					close(o.idle)
					o.idle = nil
				}
				o.stalled.Store(false)
				o.mu.Unlock()
				break
			}
			o.mu.Unlock()
			for i := 0; i < len(q); {
				buf = buf[:0]
				n := 0
				for i < len(q) && (n == 0 || len(buf)+len(q[i]) <= 64<<10) {
					buf = append(buf, q[i]...)
					i++
					n++
				}
				o.write(buf, n)
				o.mu.Lock()
				o.queued -= len(buf)
				o.mu.Unlock()
			}
		}
	}
}

// write writes n entries joined in p, or counts them dropped.
func (o *output) write(p []byte, n int) {
	if o.broken.Load() {
		outputDropped.Add(uint64(n))
		return
	}
	if _, err := o.ws.Write(p); err != nil {
		if errors.Is(err, syscall.EPIPE) {
			o.broken.Store(true)
		}
		outputDropped.Add(uint64(n))
	}
}

func (o *output) Sync() error {
	o.mu.Lock()
	idle := o.idle
	o.mu.Unlock()
	if idle != nil && !o.stalled.Load() {
		t := time.NewTimer(syncWait)
		select {
		case <-idle:
		case <-t.C:
			o.stalled.Store(true)
		}
		t.Stop()
	}
	if o.broken.Load() {
		return nil
	}
	_ = o.ws.Sync() // fsync of a pipe or terminal fails with EINVAL; nothing to report
	return nil
}
