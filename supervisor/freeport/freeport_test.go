package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestPickIsBelowTheEphemeralRangeAndFree(t *testing.T) {
	low := ephemeralLow()
	if low <= lowest+tries {
		t.Skipf("ephemeral range starts at %d: no room below it", low)
	}
	for range 20 {
		p, err := Pick()
		if err != nil {
			t.Fatal(err)
		}
		if p < lowest || p >= low {
			t.Fatalf("port %d outside [%d, %d)", p, lowest, low)
		}
		l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("picked port %d cannot be bound: %v", p, err)
		}
		l.Close()
	}
}

func TestPickSkipsABusyPort(t *testing.T) {
	// Hold every port Pick returns; each new pick must differ from all of them.
	held := map[int]net.Listener{}
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for range 30 {
		p, err := Pick()
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := held[p]; dup {
			t.Fatalf("port %d picked while held", p)
		}
		l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("picked port %d cannot be bound: %v", p, err)
		}
		held[p] = l
	}
}
