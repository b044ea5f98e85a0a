package supervisor

import (
	"os"

	"github.com/wattd/wattd/supervisor/procnet"
)

// Applications under Node.js's permission model (watt.json "permissions")
// are confined in the file system only: Node.js does not restrict
// connections to Unix sockets (through Node.js 24; on 25 and later wattd
// grants the network itself), and a worker runs as wattd's user. The admin
// API and Watt's management API let that user do everything (open a REPL
// in another application's worker, stop or reload the runtime), so a
// confined worker that found their sockets would step out of its
// confinement through them. The servers ask RestrictedWorker about each
// caller and turn such a worker away.

// maxAncestry bounds the walk from a caller up its parents: a worker's
// processes are a few levels below wattd.
const maxAncestry = 64

// RestrictedWorker reports whether pid is a process of a worker (its
// process, one it started, or a thread's) of an application that runs
// under the permission model, and the application's id. Processes are
// told by their parents and their process group, which a confined worker
// cannot leave: it may not start processes of its own.
func (rt *Runtime) RestrictedWorker(pid int) (string, bool) {
	if pid <= 0 {
		return "", false
	}
	confined := map[int]string{}
	for _, a := range rt.appList() {
		if !a.sp().conf.Watt.Permissions.On() {
			continue
		}
		for _, p := range a.workerPIDs() {
			confined[p] = a.id
		}
	}
	if len(confined) == 0 {
		return "", false
	}
	if id, ok := confined[pid]; ok {
		return id, true // whether or not its /proc entry can still be read
	}
	var id string
	found := ancestry(pid, os.Getpid(), func(p, pgrp int) bool {
		var ok bool
		if id, ok = confined[p]; !ok {
			id, ok = confined[pgrp]
		}
		return ok
	})
	return id, found
}

// ancestry calls visit with pid and its process group, then with each of
// its parents in turn, until visit says found (true), a process is gone,
// or the walk reaches init, stop (a pid not to go past; 0 for none) or
// maxAncestry levels.
func ancestry(pid, stop int, visit func(pid, pgrp int) bool) bool {
	for depth := 0; pid > 1 && pid != stop && depth < maxAncestry; depth++ {
		st, ok := procnet.ReadStat(pid)
		if !ok {
			return false
		}
		if visit(pid, st.PGRP) {
			return true
		}
		pid = st.PPID
	}
	return false
}

// workerPIDs lists the processes of a's workers: each slot's current one,
// its replacement starting and its leavers, and the standbys.
func (a *app) workerPIDs() []int {
	var pids []int
	for _, s := range a.slotList() {
		s.mu.Lock()
		for _, w := range []worker{s.cur, s.incoming} {
			if w != nil {
				pids = append(pids, w.PID())
			}
		}
		for _, l := range s.leavers {
			pids = append(pids, l.w.PID())
		}
		s.mu.Unlock()
	}
	sp := a.standbys()
	sp.mu.Lock()
	for _, sb := range sp.live {
		pids = append(pids, sb.p.pid)
	}
	sp.mu.Unlock()
	return pids
}
