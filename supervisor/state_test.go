package supervisor

import (
	"errors"
	"testing"
)

// TestTransitionsEveryPair walks every (from, to) pair: the allowed ones
// must succeed and the others must fail with a *TransitionError that leaves
// the state unchanged.
func TestTransitionsEveryPair(t *testing.T) {
	allowed := map[[2]State]bool{}
	for from, tos := range transitions {
		for _, to := range tos {
			allowed[[2]State{from, to}] = true
		}
	}
	n := 0
	for _, from := range States() {
		for _, to := range States() {
			s := from
			err := transition(&s, to)
			if allowed[[2]State{from, to}] {
				if err != nil || s != to {
					t.Errorf("%s -> %s: want ok, got %v (state %s)", from, to, err, s)
				}
				n++
				continue
			}
			var te *TransitionError
			if !errors.As(err, &te) || te.From != from || te.To != to || s != from {
				t.Errorf("%s -> %s: want TransitionError, got %v (state %s)", from, to, err, s)
			}
		}
	}
	if n != len(allowed) {
		t.Fatalf("walked %d allowed pairs, table has %d", n, len(allowed))
	}
}

func TestNoProcessStatesOnlyStart(t *testing.T) {
	for _, s := range States() {
		if s.HasProcess() {
			continue
		}
		for _, to := range []State{StateReady, StateDraining, StateStopping} {
			if CanTransition(s, to) {
				t.Errorf("%s has no process but may go to %s", s, to)
			}
		}
	}
	if CanTransition(StateExited, StateExited) {
		t.Error("self transition allowed")
	}
}

func TestStateNames(t *testing.T) {
	want := []string{"starting", "ready", "draining", "stopping", "exited", "backoff", "failed"}
	for i, s := range States() {
		if s.String() != want[i] {
			t.Errorf("%d: %s", i, s)
		}
	}
}
