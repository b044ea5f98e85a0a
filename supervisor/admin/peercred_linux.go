package admin

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// peerCredentials reads SO_PEERCRED of a connected Unix socket. On the
// accepting side that is the client at connect time; on the connecting side
// it is the process that called listen, which is how Serve names the pid of
// a wattd already holding the socket.
func peerCredentials(c net.Conn) (peerCred, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return peerCred{}, fmt.Errorf("peer credentials: %T is not a Unix socket", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return peerCred{}, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return peerCred{}, fmt.Errorf("peer credentials: %w", err)
	}
	if credErr != nil {
		return peerCred{}, fmt.Errorf("peer credentials: SO_PEERCRED: %w", credErr)
	}
	if cred == nil {
		return peerCred{}, errors.New("peer credentials: SO_PEERCRED returned nothing")
	}
	return peerCred{uid: int(cred.Uid), pid: int(cred.Pid)}, nil
}
