package supervisor

import (
	"slices"
	"sync"
	"time"

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
// slot serving, connections must wait for a worker somewhere: they are
// steered to the slot whose next worker started first, or starts first
// after its back-off (firstBack). Left to the kernel, half of them would
// wait for the slot that died last, or for a back-off, while the other
// slot's worker is ready and idle. Measured in the bench's crash-paced
// scenario, where the two workers often die within 100 ms of each other:
// see docs/operations.md (Restarts).

// steering is what the entrypoint's group is steered for; guarded by mu,
// which is held while the program is attached or detached so that the
// latest state is the one in force.
type steering struct {
	mu    sync.Mutex
	scale []*slot // the slots a scale under way lets take connections; nil when none is
	// down holds the entrypoint slots that have no worker serving, until
	// their next one is ready, each with when that worker started or is
	// to start after its back-off.
	down map[*slot]time.Time
	// rescues relay what is queued on the sockets of down slots that new
	// connections avoid (rescue.go).
	rescues map[*slot]*rescue
}

// sameStart is how close two slots' next starts are taken to be the same
// (firstBack): a Node.js start takes several times as long.
const sameStart = 10 * time.Millisecond

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

// slotDown records that an entrypoint slot has no worker serving and is
// to take no new connections until its next worker is ready, which starts
// at next (after a back-off, or now); recorded again, next is updated, as
// after a start that failed. slotUp records that the slot serves again,
// was given up or removed, and reports whether that changed the steering.
// Other applications' slots have no public socket.
func (rt *Runtime) slotDown(s *slot, next time.Time) {
	if !s.app.entry {
		return
	}
	st := &rt.steering
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.down == nil {
		st.down = map[*slot]time.Time{}
	}
	st.down[s] = next
	rt.applySteering(s.app)
}

func (rt *Runtime) slotUp(s *slot) bool {
	if !s.app.entry {
		return false
	}
	st := &rt.steering
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, down := st.down[s]; !down {
		return false
	}
	delete(st.down, s)
	rt.applySteering(s.app)
	return true
}

// firstBack returns the slots of base, all of them down, whose next
// workers start first: at the earliest start, or within sameStart of it.
// Called with rt.steering.mu held.
func (st *steering) firstBack(base []*slot) []*slot {
	var first time.Time
	for _, s := range base {
		if t := st.down[s]; first.IsZero() || t.Before(first) {
			first = t
		}
	}
	return slices.DeleteFunc(slices.Clone(base), func(s *slot) bool { return st.down[s].Sub(first) > sameStart })
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
// detaches it, and starts or ends the rescues of down slots (rescue.go):
// a down slot that new connections avoid has what the kernel queued on
// it before relayed to the slots that take them. Rescues end before the
// program changes, so that none relays a connection steered to its own
// slot, and start after. Called with rt.steering.mu held.
func (rt *Runtime) applySteering(a *app) {
	st := &rt.steering
	steered := st.scale != nil || len(st.down) > 0
	var allowed []*slot
	if steered {
		base := st.scale
		if base == nil {
			base = a.slotList()
		}
		allowed = slices.DeleteFunc(slices.Clone(base), func(s *slot) bool { _, down := st.down[s]; return down })
		if len(allowed) == 0 {
			allowed = st.firstBack(base)
		}
	}
	rescued := func(s *slot) bool {
		_, down := st.down[s]
		return steered && down && !slices.Contains(allowed, s)
	}
	// The relays of a rescue that ends go to the other slots' workers:
	// they shed, so that the relayed clients connect to them directly
	// (the slot's return has them shed as well; twice does no harm).
	var shed []*slot
	defer func() {
		for _, s := range shed {
			rt.shedOthers(s)
		}
	}()
	for s := range st.rescues {
		if !rescued(s) && st.endRescue(s) {
			shed = append(shed, s)
		}
	}
	if steered && rt.steer(a, allowed) {
		for s := range st.down {
			if _, on := st.rescues[s]; on || !rescued(s) {
				continue
			}
			if r := rt.startRescue(s); r != nil {
				if st.rescues == nil {
					st.rescues = map[*slot]*rescue{}
				}
				st.rescues[s] = r
			}
		}
		return
	}
	for s := range st.rescues {
		if st.endRescue(s) {
			shed = append(shed, s)
		}
	}
	rt.unsteer(a)
}

// endRescue stops relaying what is queued on s's socket, if that runs,
// and waits until the rescue has let go of the socket and its relays have
// connected (microseconds; see rescue.wait): the steering is taken off,
// and the other workers shed, only after that, so that no connection of
// the slot's own worker is relayed and every relay is among what they
// shed. It returns whether connections were relayed. Called with
// rt.steering.mu held.
func (st *steering) endRescue(s *slot) bool {
	r := st.rescues[s]
	if r == nil {
		return false
	}
	r.stop()
	r.wait()
	delete(st.rescues, s)
	return r.relayed.Load() > 0
}

// releaseSocket stops whatever of the steering holds a copy of s's public
// socket, before the slot closes it: a copy left open would keep it in
// the port's group.
//
// The relays it made go to the other slots' workers, and no return of the
// slot will have those shed them: they shed now, so that the relayed
// clients connect to them directly.
func (rt *Runtime) releaseSocket(s *slot) {
	st := &rt.steering
	st.mu.Lock()
	relayed := st.endRescue(s)
	st.mu.Unlock()
	if relayed {
		rt.shedOthers(s)
	}
}
