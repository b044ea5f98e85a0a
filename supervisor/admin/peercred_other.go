//go:build !linux

package admin

import (
	"fmt"
	"net"
	"runtime"
)

// peerCredentials is unsupported off Linux: write routes are then refused,
// which fails closed rather than trusting an unknown caller.
func peerCredentials(net.Conn) (peerCred, error) {
	return peerCred{}, fmt.Errorf("peer credentials are not supported on %s", runtime.GOOS)
}
