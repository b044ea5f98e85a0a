// Package freeport picks loopback TCP ports for tests and the bench to
// hand to a process that binds them a moment later.
//
// Asking the kernel (listening on port 0 and closing) gives a port of the
// ephemeral range, the same range the kernel then hands to every other
// bind(0) and to the source port of every outgoing connection: between
// the pick and its use, wattd's own mesh proxy, a Node worker or a load
// generator's connection can take it. Pick chooses below that range
// instead, where only an explicit bind can land.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"

	"github.com/wattd/wattd/supervisor/procnet"
)

// lowest is the smallest port Pick chooses: above the ports services
// commonly listen on, below Linux's default ephemeral range (32768).
const lowest = 20000

// tries bounds the ports Pick tries before it falls back to the kernel.
const tries = 64

// Pick returns a port of 127.0.0.1 that was free a moment ago, outside the
// kernel's ephemeral range when that range leaves room below it.
func Pick() (int, error) {
	if low := ephemeralLow(); low > lowest+tries {
		for range tries {
			p := lowest + rand.IntN(low-lowest)
			l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				continue
			}
			return p, l.Close()
		}
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("no free loopback port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}

// ephemeralLow is the first port of the kernel's ephemeral range, 0 when
// it cannot be read.
func ephemeralLow() int {
	low, _, _ := procnet.EphemeralPorts()
	return low
}
