package main

import (
	"go.uber.org/zap"

	"github.com/wattd/wattd/supervisor/fdlimit"
	"github.com/wattd/wattd/supervisor/nproc"
)

// raiseFDLimit gives the daemon the largest descriptor budget it may have;
// the mesh proxy then keeps a reserve of it for supervision.
func raiseFDLimit(log *zap.Logger) {
	soft, hard, err := fdlimit.Raise()
	if err != nil {
		log.Warn("could not raise the file descriptor limit", zap.Error(err))
		return
	}
	log.Debug("file descriptor limit", zap.Uint64("soft", soft), zap.Uint64("hard", hard))
}

// threadReserve is how many idle threads wattd keeps beyond those it has
// at start: it runs on about 10, however many workers it supervises, and
// needs one more only while more of its goroutines than that block in
// system calls at once.
const threadReserve = 8

// reserveThreads keeps wattd able to start threads once its workers have
// taken the max user processes limit (nproc): without a thread it needs,
// the Go runtime ends wattd.
func reserveThreads(log *zap.Logger) {
	if n := nproc.Reserve(threadReserve); n > 0 {
		lim, _ := nproc.Limit()
		log.Debug("threads kept for wattd under the max user processes limit", zap.Int("threads", n), zap.Uint64("limit", lim))
	}
}
