package supervisor

import (
	"go.uber.org/zap"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/listeners"
)

// checkPublicPort makes sure no program but wattd listens on the public
// address. SO_REUSEPORT lets any same-user socket join wattd's group, after
// which the kernel gives that program part of the traffic; wattd refuses
// that unless watt.json shares the port on purpose (reuseTcpPorts: true).
// own holds the sockets of wattd's group, empty before it is opened.
func (rt *Runtime) checkPublicPort(host string, port int, own map[uint64]bool) error {
	if port == 0 {
		return nil // a port the kernel picks for wattd is nobody else's
	}
	err := listeners.CheckFree(host, port, own)
	if err == nil || !rt.cfg.SharePort {
		return err
	}
	rt.log.Info("sharing the public port with other programs (reuseTcpPorts: true)", zap.Error(err))
	return nil
}

// publicInodes lists the entrypoint's sockets as the kernel names them.
func (a *app) publicInodes() map[uint64]bool {
	own := map[uint64]bool{}
	for _, s := range a.slotList() {
		s.sockMu.Lock()
		for i, f := range s.listeners {
			if s.names[i] != ipc.ListenerHTTP {
				continue
			}
			if ino, err := listeners.Inode(f); err == nil {
				own[ino] = true
			}
		}
		s.sockMu.Unlock()
	}
	return own
}
