package supervisor

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"
)

// runDirCheckEvery is how often the runtime looks for its runtime
// directory when no worker start needs it: what `wattd ctl` needs
// (runtime.json, the admin socket) comes back within this.
const runDirCheckEvery = 10 * time.Second

// checkRunDir puts back the runtime directory and what wattd keeps in it
// when they went while wattd runs (rundir.Dir.Restore), with the files
// that worker starts need (the capabilities' preload and launchers, the
// applications' info files), and says so once per restoration. It runs
// every runDirCheckEvery, and before a worker start that finds the
// directory replaced (needRunDir).
func (rt *Runtime) checkRunDir() {
	if rt.dir == nil {
		return
	}
	rt.runDirMu.Lock()
	defer rt.runDirMu.Unlock()
	r, err := rt.dir.Restore()
	if !r.Any() {
		if err != nil && rt.runDirErr != err.Error() {
			rt.runDirErr = err.Error()
			rt.log.Warn("runtime directory: could not keep it in shape", zap.String("path", rt.dir.Path), zap.Error(err))
		}
		return
	}
	var errs []string
	if err != nil {
		errs = append(errs, err.Error())
	}
	if cfg := rt.current.Load(); cfg != nil {
		if err := rt.writeAppInfos(cfg); err != nil {
			errs = append(errs, err.Error())
		}
		for _, a := range rt.appList() {
			sp := a.sp()
			if sp == nil {
				continue
			}
			// The capability writes its files (the Node.js preload) as it
			// prepares the launch; the launch itself is unchanged.
			if capb, capApp, err := rt.resolve(cfg, sp.conf); err == nil {
				if _, err := launchFor(capb, capApp); err != nil {
					errs = append(errs, fmt.Sprintf("app %q: %v", a.id, err))
				}
			}
		}
	}
	fields := []zap.Field{zap.String("path", rt.dir.Path), zap.Strings("restored", r.Files)}
	var msgs []string
	switch {
	case r.Dir:
		msgs = append(msgs, "runtime directory was removed while wattd runs; made it again")
	case len(r.Files) > 0 || len(r.Lost) > 0:
		msgs = append(msgs, "files of the runtime directory were removed while wattd runs; made them again")
	}
	if len(r.Blocked) > 0 {
		msgs = append(msgs, "something else took the name of a socket of wattd's in the runtime directory; wattd leaves it there and puts the socket back once it is removed")
		fields = append(fields, zap.Strings("blocked", r.Blocked))
	}
	msg := strings.Join(msgs, "; ")
	if len(r.Lost) > 0 {
		msg += "; sockets whose second names went too (with the base directory) stay unreachable until wattd restarts"
		fields = append(fields, zap.Strings("lost", r.Lost))
	}
	if len(errs) > 0 {
		fields = append(fields, zap.String("error", strings.Join(errs, "; ")))
	}
	rt.runDirErr = ""
	rt.log.Warn(msg, fields...)
}

// needRunDir is what a worker start asks before it uses the runtime
// directory (the mesh socket is made there, the Node.js preload read from
// there): checkRunDir when the directory was removed, two stats when it
// was not. A new socket gets its second name as it is made (KeepSocket),
// not by a scan at every start.
func (rt *Runtime) needRunDir() {
	if rt.dir.Replaced() {
		rt.checkRunDir()
	}
}

// watchRunDir runs checkRunDir every runDirCheckEvery until ctx ends or
// the runtime stops.
func (rt *Runtime) watchRunDir(ctx context.Context) {
	t := time.NewTicker(runDirCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-rt.stopping:
			return
		case <-t.C:
			rt.checkRunDir()
		}
	}
}
