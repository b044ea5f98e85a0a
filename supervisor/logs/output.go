package logs

import (
	"errors"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

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
type output struct {
	ws     zapcore.WriteSyncer
	broken atomic.Bool // the reader of a pipe went away; it never comes back
}

func newOutput(ws zapcore.WriteSyncer) *output { return &output{ws: ws} }

func (o *output) Write(p []byte) (int, error) {
	if o.broken.Load() {
		outputDropped.Add(1)
		return len(p), nil
	}
	if _, err := o.ws.Write(p); err != nil {
		if errors.Is(err, syscall.EPIPE) {
			o.broken.Store(true)
		}
		outputDropped.Add(1)
	}
	return len(p), nil
}

func (o *output) Sync() error {
	if o.broken.Load() {
		return nil
	}
	_ = o.ws.Sync() // fsync of a pipe or terminal fails with EINVAL; nothing to report
	return nil
}
