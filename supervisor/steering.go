package supervisor

import (
	"slices"
	"sync"

	"go.uber.org/zap"

	"github.com/wattd/wattd/ipc"
)

// Which of the entrypoint's sockets take new connections. The kernel
// spreads them over every socket of the port's SO_REUSEPORT group, and a
// socket whose slot has no worker serving queues its share until one
// does. wattd steers the group (listeners.Steer) to the sockets of the
// slots that serve in two cases: while the number of slots changes (the
// new sockets until their workers serve, the leaving ones while their
// workers drain), and while a slot whose worker ended waits for the next
// one, until it is ready (unless a standby takes the slot at once; see
// slot.run). It gives the choice back to the kernel once neither holds,
// and then has the other slots' workers shed their connections
// (shedOthers), so that the clients steered to them spread again. With no
// slot serving there is nothing to steer to: connections then wait in the
// sockets' queues for the first worker to come.

// steering is what the entrypoint's group is steered for; guarded by mu,
// which is held while the program is attached or detached so that the
// latest state is the one in force.
type steering struct {
	mu    sync.Mutex
	scale []*slot        // the slots a scale under way lets take connections; nil when none is
	down  map[*slot]bool // entrypoint slots backing off, until their next worker is ready
}

// steerScale lets only slots take the entrypoint's new connections while
// it scales, until endScaleSteering.
func (rt *Runtime) steerScale(a *app, slots []*slot) {
	st := &rt.steering
	st.mu.Lock()
	defer st.mu.Unlock()
	st.scale = slices.Clone(slots)
	rt.applySteering(a)
}

// endScaleSteering ends what steerScale began.
func (rt *Runtime) endScaleSteering(a *app) {
	st := &rt.steering
	st.mu.Lock()
	defer st.mu.Unlock()
	st.scale = nil
	rt.applySteering(a)
}

// slotDown records that an entrypoint slot has no worker and is to take
// no new connections until its next worker is ready (down), or that the
// slot serves again, was given up or removed (!down); it reports whether
// that changed the steering. Other applications' slots have no public
// socket.
func (rt *Runtime) slotDown(s *slot, down bool) bool {
	if !s.app.entry {
		return false
	}
	st := &rt.steering
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.down[s] == down {
		return false
	}
	if down {
		if st.down == nil {
			st.down = map[*slot]bool{}
		}
		st.down[s] = true
	} else {
		delete(st.down, s)
	}
	rt.applySteering(s.app)
	return true
}

// shedOthers asks the workers of the entrypoint's slots other than s to
// end each client connection they have after a response, within a
// quarter of a second (ipc.TypeShed): s serves again, and the clients steered to them
// while it had no worker would otherwise stay on them, kept alive, and
// leave s with none (measured in the bench's crash scenario before
// shedding: a third less throughput). Reconnecting, they spread over
// every slot.
func (rt *Runtime) shedOthers(s *slot) {
	// slotList is the app's own slice: a copy to filter.
	rt.shed(slices.DeleteFunc(slices.Clone(s.app.slotList()), func(o *slot) bool { return o == s }))
}

// shed asks the ready workers of slots to shed their client connections.
func (rt *Runtime) shed(slots []*slot) {
	for _, o := range slots {
		o.mu.Lock()
		w, ready := o.cur, o.state == StateReady
		o.mu.Unlock()
		if w == nil || !ready {
			continue
		}
		go func() {
			if err := w.Send(&ipc.Message{Type: ipc.TypeShed}); err != nil {
				o.log.Debug("could not ask the worker to shed its connections", zap.Int("pid", w.PID()), zap.Error(err))
			}
		}()
	}
}

// applySteering attaches the program that the state calls for, or
// detaches it. Called with rt.steering.mu held.
func (rt *Runtime) applySteering(a *app) {
	st := &rt.steering
	if st.scale != nil || len(st.down) > 0 {
		base := st.scale
		if base == nil {
			base = a.slotList()
		}
		allowed := slices.DeleteFunc(slices.Clone(base), func(s *slot) bool { return st.down[s] })
		if rt.steer(a, allowed) {
			return
		}
	}
	rt.unsteer(a)
}
