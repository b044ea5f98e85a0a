package main

import (
	"go.uber.org/zap"

	"github.com/wattd/wattd/supervisor/fdlimit"
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
