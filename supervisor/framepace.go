package supervisor

import (
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/wattd/wattd/supervisor/logs"
)

// The pace of a worker's control frames. Apart from messaging, a worker
// has little to say: a stats report every 2 s, its spans every 200 ms (or
// when 4,096 are waiting), a batch of health signals a second, the answer
// to a check wattd asked for. Reading and decoding a frame costs wattd
// about 2 µs, so a worker that writes small frames in a loop, by a bug or
// to lie, kept a whole core of wattd busy (500,000 frames a second,
// measured on 2 CPUs), which the worker's own cgroup does not limit.
//
// So each worker's channel is read at most paceFrames such frames a
// second beyond a burst of paceBurst: past them, the reader stops for
// paceNap before it reads on, and the frames wait in the socket (then in
// the worker, whose writes block or queue). Nothing is dropped or
// reordered, and only that worker waits. Messaging frames that reach
// someone are the applications' own traffic (tens of thousands a second
// between two busy workers) and are not counted; those that go nowhere
// (messenger.route) are.
const (
	paceFrames = 1000
	paceBurst  = 2000
	paceNap    = 100 * time.Millisecond
	// paceBytes is how many bytes of a frame count as one more frame: the
	// cost of a frame is mostly that of decoding its bytes, so a worker
	// that writes frames of 1 MiB (each taking milliseconds of wattd's CPU
	// to decode) gets about 16 of them a second, not 1,000. A worker that
	// wrote 1 MiB stats frames in a loop kept 70% of a core of wattd busy
	// and never met the frame count alone.
	paceBytes = 16 << 10
	// paceWarnEvery is the least time between two warnings for a worker.
	paceWarnEvery = 30 * time.Second
)

// paceWarning is logged when a worker goes over its pace.
const paceWarning = "the worker sends control frames faster than wattd reads them from one worker; it reads them at that pace"

// framePace counts one worker's frames; its reader alone uses it.
type framePace struct {
	tokens float64      // frames that may still be read at once
	at     time.Time    // when tokens was last brought up to date
	warn   logs.Limiter // one warning per paceWarnEvery
}

// take counts a frame read at now. Once the worker is over its pace, it
// sleeps paceNap (during which tokens for paceNap's worth of frames come
// back) and logs a warning, at most every paceWarnEvery, saying so.
func (f *framePace) take(now time.Time, size int, log *zap.Logger) {
	if d := f.wait(now, 1+float64(size)/paceBytes); d > 0 {
		if held, ok := f.warn.Allow(now, paceWarnEvery); ok {
			// pauses: this one and those since the last warning.
			log.Warn(paceWarning,
				zap.Int("framesPerSecond", paceFrames), zap.Int("burst", paceBurst), zap.Uint64("pauses", held+1))
		}
		time.Sleep(d)
	}
}

// wait counts a frame read at now, which counts as cost frames (its
// size weighs in), and returns how long the reader is to wait before the
// next read: 0 within the pace, paceNap beyond it.
func (f *framePace) wait(now time.Time, cost float64) time.Duration {
	if f.at.IsZero() {
		f.tokens = paceBurst
	} else {
		f.tokens = min(paceBurst, f.tokens+now.Sub(f.at).Seconds()*paceFrames)
	}
	f.at = now
	f.tokens -= cost
	if f.tokens >= 0 {
		return 0
	}
	return paceNap
}

// countingReader counts the bytes read through it: those of a worker's
// control channel, so that its pace weighs frames by their size.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}
