package supervisor

import (
	"slices"
	"sync"
)

// Which of the entrypoint's sockets take new connections. The kernel
// spreads them over every socket of the port's SO_REUSEPORT group, and a
// socket whose slot has no worker serving queues its share until one
// does. wattd steers the group (listeners.Steer) to the sockets of the
// slots that serve in two cases: while the number of slots changes (the
// new sockets until their workers serve, the leaving ones while their
// workers drain), and while a slot backs off between crashes, until its
// next worker is ready (the slot's owner decides which restarts count;
// see slot.run). It gives the choice back to the kernel once neither
// holds. With no slot serving there is nothing to steer to: connections
// then wait in the sockets' queues for the first worker to come.

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

// slotDown records that an entrypoint slot backs off and is to take no
// new connections until its next worker is ready (down), or that the slot
// serves again, was given up or removed (!down). Other applications'
// slots have no public socket.
func (rt *Runtime) slotDown(s *slot, down bool) {
	if !s.app.entry {
		return
	}
	st := &rt.steering
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.down[s] == down {
		return
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
