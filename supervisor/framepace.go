package supervisor

import (
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
func (f *framePace) take(now time.Time, log *zap.Logger) {
	if d := f.wait(now); d > 0 {
		if held, ok := f.warn.Allow(now, paceWarnEvery); ok {
			// pauses: this one and those since the last warning.
			log.Warn(paceWarning,
				zap.Int("framesPerSecond", paceFrames), zap.Int("burst", paceBurst), zap.Uint64("pauses", held+1))
		}
		time.Sleep(d)
	}
}

// wait counts a frame read at now and returns how long the reader is to
// wait before the next read: 0 within the pace, paceNap beyond it.
func (f *framePace) wait(now time.Time) time.Duration {
	if f.at.IsZero() {
		f.tokens = paceBurst
	} else {
		f.tokens = min(paceBurst, f.tokens+now.Sub(f.at).Seconds()*paceFrames)
	}
	f.at = now
	f.tokens--
	if f.tokens >= 0 {
		return 0
	}
	return paceNap
}
