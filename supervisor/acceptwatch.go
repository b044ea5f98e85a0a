package supervisor

import (
	"fmt"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wattd/wattd/supervisor/listeners"
	"github.com/wattd/wattd/supervisor/procnet"
)

// A worker that says ready is believed about what it serves, but not
// blindly: wattd owns the sockets it hands over and can see their accept
// queues. A ready worker takes what waits in the queue of each socket it
// said it serves as soon as its event loop turns (Node.js and Go accept
// until the queue is empty), so the queue is empty most of the time and
// never grows for long. One that said ready without listening, closed its
// server, or accepts nothing any more leaves the connections the kernel
// hands its socket waiting there, for as long as their clients wait. The
// health loop samples the queues (queueEvery) and replaces the worker at
// once when a queue has held connections at every sample for
// maxUnresponsive without ever shrinking while the worker was idle, the
// same limit as for a worker that stops reporting: from the clients' side
// the two look alike.
//
// The queue's length alone cannot tell such a worker from a busy one: a
// handler that holds the event loop for 600 ms while clients keep
// connecting leaves one connection in the queue at every sample, though
// the worker takes one each turn of its loop. So the verdict also needs
// the worker to have been idle meanwhile, its process and the children it
// started using less than a tenth of a CPU; a worker that is that busy is
// working, and one whose loop is stuck is the stats rule's
// (maxUnresponsive without stats).

// idleShare is the CPU share (of one core, over the time connections
// waited) under which a worker counts as idle.
const idleShare = 0.1

// queueEvery is the sampling period of the accept queues: about ten
// samples per maxUnresponsive, enough for a queue that a worker drains to
// show it, and few enough that hundreds of idle workers cost wattd next to
// nothing. It is made a multiple of the stats period where that allows
// ten samples (2 s by default, for 30 s): the workers report on the wall
// clock's multiples of their period, so the samples come with a wake-up
// wattd has anyway.
func queueEvery(maxUnresponsive, statsEvery time.Duration) time.Duration {
	every := max(maxUnresponsive/10, 20*time.Millisecond)
	if statsEvery > 0 && every >= statsEvery {
		every = every / statsEvery * statsEvery
	}
	return every
}

// untilNextMultiple is the time from now to the wall clock's next
// multiple of every. Every worker's samples fall on those multiples, so
// that an idle wattd wakes once for all of them rather than once for each
// (measured with 200 workers idle: 2.2-2.8% of one core with a ticker per
// worker started at its readiness).
func untilNextMultiple(now time.Time, every time.Duration) time.Duration {
	return now.Truncate(every).Add(every).Sub(now)
}

// queueRun follows one socket's queue: since is the first sample of the
// current run of samples with connections waiting and none taken, zero
// when there is none; last the previous sample, at at; cpu the worker's
// CPU time when the run began (see busy).
type queueRun struct {
	since, at time.Time
	last      int
	cpu       time.Duration
	cpuOK     bool
	conns     map[uint64]bool // see took
}

// queueWatch follows the queues of a worker's sockets, by name.
type queueWatch struct {
	every time.Duration
	runs  map[string]*queueRun
}

// observe records that n connections wait on socket name at now, and
// returns for how long connections have waited there without the worker
// taking any: 0 unless this sample and every one since the run began
// found connections waiting and never fewer than the sample before. A
// sample after a gap (wattd itself did not run) starts afresh: what
// happened meanwhile is unknown.
func (q *queueWatch) observe(name string, n int, now time.Time) time.Duration {
	r := q.run(name)
	gap := !r.at.IsZero() && now.Sub(r.at) > 3*q.every
	switch {
	case n <= 0:
		r.since = time.Time{}
	case r.since.IsZero() || gap || n < r.last:
		r.since = now
		r.cpuOK = false
	}
	r.last, r.at = n, now
	if r.since.IsZero() {
		return 0
	}
	return now.Sub(r.since)
}

func (q *queueWatch) run(name string) *queueRun {
	if q.runs == nil {
		q.runs = map[string]*queueRun{}
	}
	r := q.runs[name]
	if r == nil {
		r = &queueRun{}
		q.runs[name] = r
	}
	return r
}

// busy reports whether the worker, whose CPU time is cpu now (ok false
// when unknown), used at least idleShare of a core since socket name's
// run began, and starts the run afresh if so: its connections move,
// slowly. The first call of a run only records the CPU time. Unknown CPU
// time counts as busy: no verdict without the evidence.
func (q *queueWatch) busy(name string, cpu time.Duration, ok bool, now time.Time) bool {
	r := q.run(name)
	if !ok {
		r.cpuOK = false
		return true
	}
	if !r.cpuOK {
		r.cpu, r.cpuOK = cpu, true
		return false
	}
	if cpu-r.cpu >= time.Duration(idleShare*float64(now.Sub(r.since))) {
		r.since, r.cpu = now, cpu
		return true
	}
	return false
}

// took reports whether conns, the connections from socket name that the
// worker's processes hold now, has one they did not hold at the previous
// sample, and starts the run afresh if so: the worker took a connection.
// It is for programs judged on a socket they did not name (see
// judgeQueues), which may take one connection at a time: one that
// serves a queue that grows as fast as it takes from it leaves the
// queue's length as it was at every sample, waiting on a slow upstream
// rather than using CPU, yet takes connections all along.
func (q *queueWatch) took(name string, conns map[uint64]bool, now time.Time) bool {
	r := q.run(name)
	prev := r.conns
	r.conns = conns
	for ino := range conns {
		if !prev[ino] {
			r.since = now
			r.cpuOK = false
			return true
		}
	}
	return false
}

// reset forgets every run, as while the worker's inspector is open.
func (q *queueWatch) reset() { clear(q.runs) }

// judgeQueues samples the accept queues of the sockets w said it serves
// and returns why w must be replaced at once, or "" (see above). Sockets
// whose queue the kernel does not show are not judged.
//
// A worker that does not speak the protocol names no socket. When it
// takes its sockets by LISTEN_FDS (a command app with "listenFds", a Go
// app built on the SDK module), it is judged on the first one, fd 3: a
// program that takes systemd-style sockets serves at least that one, and
// for the entrypoint it is the public socket. One that ignores LISTEN_FDS
// and listens somewhere else would otherwise keep its slot's share of the
// public port's connections waiting, unseen.
//
// Such a program may also take one connection at a time, waiting on
// something else meanwhile (a blocking server): its queue then need not
// shrink while it works through it, and it is idle. Its verdict also
// needs it to have taken no connection from that socket meanwhile, as
// /proc shows the connections its processes hold (took).
func (s *slot) judgeQueues(w worker, r healthRules, q *queueWatch, now time.Time) string {
	serves := w.Serves()
	guessed := false
	if len(serves) == 0 && !closed(w.Hello()) && !s.app.sp().launch.Fronted {
		guessed = true
		s.sockMu.Lock()
		if len(s.names) > 0 {
			serves = s.names[:1]
		}
		s.sockMu.Unlock()
	}
	if len(serves) == 0 {
		return ""
	}
	if st, _ := w.Stats(); st.Inspector {
		// A debugger may hold it at a breakpoint.
		q.reset()
		return ""
	}
	type sample struct {
		name string
		n    int
		port int    // a TCP socket's, when guessed
		path string // a Unix socket's, when guessed
	}
	var samples []sample
	s.sockMu.Lock() // the files stay open while they are read
	for i, f := range s.listeners {
		if name := s.names[i]; slices.Contains(serves, name) {
			if n, err := listeners.Queued(f); err == nil {
				sm := sample{name: name, n: n}
				if guessed && n > 0 {
					sm.port, sm.path = localAddr(f)
				}
				samples = append(samples, sm)
			}
		}
	}
	s.sockMu.Unlock()
	for _, sm := range samples {
		waited := q.observe(sm.name, sm.n, now)
		if sm.n <= 0 {
			continue
		}
		cpu, ok := procnet.TreeCPU(w.PID())
		if q.busy(sm.name, cpu, ok, now) {
			continue
		}
		if guessed {
			var conns map[uint64]bool
			switch {
			case sm.port > 0:
				conns = procnet.AcceptedOn(procnet.Tree(w.PID()), sm.port)
			case sm.path != "":
				conns = procnet.AcceptedOnUnix(procnet.Tree(w.PID()), sm.path)
			}
			if q.took(sm.name, conns, now) {
				continue
			}
		}
		if waited < r.MaxUnresponsive {
			continue
		}
		return fmt.Sprintf("unhealthy: %d connection(s) waiting on its %s socket, none taken for %s while it was idle (maxUnresponsive %s)",
			sm.n, sm.name, waited.Round(time.Millisecond), r.MaxUnresponsive)
	}
	return ""
}

// localAddr is the port of f, a TCP socket, or the path of f, a Unix one
// bound to a path; zero and "" otherwise.
func localAddr(f *os.File) (port int, path string) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, ""
	}
	_ = rc.Control(func(fd uintptr) {
		sa, err := unix.Getsockname(int(fd))
		if err != nil {
			return
		}
		switch sa := sa.(type) {
		case *unix.SockaddrInet4:
			port = sa.Port
		case *unix.SockaddrInet6:
			port = sa.Port
		case *unix.SockaddrUnix:
			path = sa.Name
		}
	})
	return port, path
}
