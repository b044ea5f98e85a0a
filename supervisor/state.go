package supervisor

import "fmt"

// State is where a worker slot's current process stands. Every change goes
// through transition, so an illegal move is a typed error instead of a
// silently inconsistent slot.
type State int

const (
	StateStarting State = iota // process started, not ready yet
	StateReady                 // serving
	StateDraining              // asked to stop accepting and finish in-flight work
	StateStopping              // SIGTERM sent, waiting for exit (SIGKILL after the grace)
	StateExited                // no process; not going to start one unless asked
	StateBackoff               // no process; a restart is scheduled
	StateFailed                // no process; gave up (crash loop, restartOnError off)
)

var stateNames = [...]string{"starting", "ready", "draining", "stopping", "exited", "backoff", "failed"}

func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("State(%d)", int(s))
	}
	return stateNames[s]
}

// States lists every state, for tests and docs.
func States() []State {
	out := make([]State, len(stateNames))
	for i := range out {
		out[i] = State(i)
	}
	return out
}

// transitions is the whole state machine: from → allowed destinations.
var transitions = map[State][]State{
	StateStarting: {StateReady, StateDraining, StateStopping, StateExited, StateBackoff, StateFailed},
	StateReady:    {StateDraining, StateStopping, StateExited, StateBackoff, StateFailed},
	StateDraining: {StateStopping, StateExited, StateBackoff, StateFailed},
	StateStopping: {StateExited, StateBackoff, StateFailed},
	StateExited:   {StateStarting, StateFailed}, // failed: a dependency could not start
	StateBackoff:  {StateStarting, StateExited},
	StateFailed:   {StateStarting, StateExited},
}

// A process that is gone cannot be ready, draining or stopping again, and a
// slot with no process can only start one (or settle as exited, or give up
// before starting because an application it depends on could not start):
// that is what the table above encodes.

// TransitionError is returned for a move the state machine does not allow.
type TransitionError struct{ From, To State }

func (e *TransitionError) Error() string {
	return fmt.Sprintf("illegal worker state transition %s -> %s", e.From, e.To)
}

// CanTransition reports whether from → to is allowed.
func CanTransition(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// transition moves *s to to, or returns a *TransitionError and leaves *s.
func transition(s *State, to State) error {
	if !CanTransition(*s, to) {
		return &TransitionError{From: *s, To: to}
	}
	*s = to
	return nil
}

// HasProcess reports whether a slot in this state has a live process.
func (s State) HasProcess() bool {
	return s == StateStarting || s == StateReady || s == StateDraining || s == StateStopping
}
