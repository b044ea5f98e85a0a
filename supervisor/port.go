package supervisor

import (
	"errors"
	"fmt"
	"net"

	"go.uber.org/zap"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/config"
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

// claimPublicPort checks the configured public port and binds the
// entrypoint's first socket on it, for its first slot to take. New calls it
// before wattd opens any socket of its own on a port the kernel picks: the
// kernel takes those from the ephemeral range, and a public port configured
// in that range could go to one of them, after which wattd would find its
// own socket on the public port and refuse to start. A port of 0, a passed
// socket, or an entrypoint without workers leave nothing to claim.
func (rt *Runtime) claimPublicPort(cfg *config.Config) error {
	if rt.passed != nil || cfg.Server.Port == 0 {
		return nil
	}
	entry := false
	for _, ac := range cfg.Applications {
		entry = entry || (ac.ID == cfg.Entrypoint && ac.Workers > 0)
	}
	if !entry {
		return nil
	}
	if err := rt.checkPublicPort(cfg.Server.Hostname, cfg.Server.Port, nil); err != nil {
		if dnsErr := (*net.DNSError)(nil); errors.As(err, &dnsErr) {
			// The name passed the config's checks; say where it came from.
			return fmt.Errorf("%s: /server/hostname: %q does not resolve to an address to listen on: %w", cfg.File, cfg.Server.Hostname, err)
		}
		return err
	}
	f, addr, err := listeners.TCP(cfg.Server.Hostname, cfg.Server.Port)
	if err != nil {
		return fmt.Errorf("app %q worker 0: %w", cfg.Entrypoint, err)
	}
	rt.claimed, rt.claimedAddr = f, addr
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
