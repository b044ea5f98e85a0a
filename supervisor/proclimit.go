package supervisor

import (
	"go.uber.org/zap"

	"github.com/wattd/wattd/supervisor/nproc"
)

// threadsPerWorker is what a worker may count against the max user
// processes limit: a Node.js worker runs 11 threads once libuv's thread
// pool has started, and one more for a wrapper (npm, sh) above it.
const threadsPerWorker = 12

// warnLowProcLimit says once, before any worker starts (the threads the
// user has are counted then), when the max user processes limit
// (RLIMIT_NPROC, counting threads) leaves no room for this many workers
// and one replacement beside them: past the limit a worker start fails
// with "resource temporarily unavailable", and a running worker that
// needs a thread aborts, failures that otherwise show only worker by
// worker.
func (rt *Runtime) warnLowProcLimit() {
	lim, ok := nproc.Limit()
	if !ok {
		return
	}
	used, ok := nproc.Used()
	if !ok {
		return
	}
	workers := rt.slotCount()
	need := used + threadsPerWorker*(workers+1)
	if uint64(need) <= lim {
		return
	}
	rt.log.Warn("the max user processes limit is low for this many workers: it counts every thread of the user's processes, and a worker past it fails to start (\"resource temporarily unavailable\") or aborts when it needs a thread; raise it (LimitNPROC= under systemd, ulimit -u, docker run --ulimit nproc=)",
		zap.Uint64("limit", lim), zap.Int("used", used), zap.Int("workers", workers), zap.Int("wanted", need))
}
