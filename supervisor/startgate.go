package supervisor

import (
	"runtime"
	"sync"
	"time"

	"github.com/wattd/wattd/supervisor/config"
)

// startGate bounds how many worker processes start at once: Watt's
// startupConcurrency. Two hundred workers spawned together on a two-core
// machine share the CPU two hundred ways, so every one of them is slow to
// become ready, the first ready app waits as long as the last, and a start
// timeout counts against the crowd rather than against the app. Through
// the gate they start a few at a time, each at the speed of a lone start.
//
// A start holds its place from just before its process is spawned until
// the worker is ready, has exited, or its start was given up (awaitReady
// returned; a standby is warm or gone). The time a start waits at the gate
// is not part of its startTimeout, which counts from the spawn.
//
// What passes through it: a slot's first start and the starts an operator
// asks for, the replacement of a ready worker (rolling restart, unhealthy
// worker) and standby starts. The restart of a worker that exited does
// not wait (slot.run), nor does a standby's promotion, which starts
// nothing.
type startGate struct {
	places chan struct{}
	// hold is the longest one start keeps its place, so that a worker
	// which neither becomes ready nor exits (startTimeout 0, no limit)
	// cannot close the gate to every other start, crash restarts included.
	hold time.Duration
}

func newStartGate(limit int, hold time.Duration) *startGate {
	return &startGate{places: make(chan struct{}, max(limit, 1)), hold: hold}
}

// limit is the number of starts that may run at once.
func (g *startGate) limit() int { return cap(g.places) }

// starting is the number of starts holding a place now.
func (g *startGate) starting() int { return len(g.places) }

// enter waits for a place; nil when cancel is closed first.
func (g *startGate) enter(cancel <-chan struct{}) *startPlace {
	select {
	case g.places <- struct{}{}:
	case <-cancel:
		return nil
	}
	p := &startPlace{g: g}
	p.timer = time.AfterFunc(g.hold, p.free)
	return p
}

// startPlace is one start's place in the gate.
type startPlace struct {
	g     *startGate
	once  sync.Once
	timer *time.Timer
}

// free gives the place back; later calls do nothing.
func (p *startPlace) free() { p.once.Do(func() { <-p.g.places }) }

// leave ends the start's hold. Safe on nil (a start that took no place).
func (p *startPlace) leave() {
	if p == nil {
		return
	}
	p.timer.Stop()
	p.free()
}

// startupConcurrency is the gate's size: the config's, else twice the CPUs
// wattd may use (GOMAXPROCS, which follows a container's CPU limit), as
// Watt's default is twice the available parallelism.
func startupConcurrency(cfg *config.Config) int {
	if cfg.StartupConcurrency > 0 {
		return cfg.StartupConcurrency
	}
	return 2 * runtime.GOMAXPROCS(0)
}

// startHold is the longest one start keeps its place: startTimeout, or
// the default start timeout when startTimeout is 0 (no limit).
func startHold(cfg *config.Config) time.Duration {
	if cfg.StartTimeout > 0 {
		return cfg.StartTimeout
	}
	return config.DefaultStartTimeout
}
