package ipc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotSupervised is returned when the process was not started by wattd.
var ErrNotSupervised = errors.New("ipc: not started by wattd")

// listenFDsStart is the first passed fd, as in sd_listen_fds(3).
const listenFDsStart = 3

// Listeners returns the sockets passed by the LISTEN_FDS convention, keyed by
// their LISTEN_FDNAMES name. It returns ErrNotSupervised when LISTEN_PID is
// not this process. The environment variables are left in place so a child
// started with exec sees them too only when it is the same pid.
func Listeners() (map[string]net.Listener, error) {
	if os.Getenv(EnvListenPID) != strconv.Itoa(os.Getpid()) {
		return nil, ErrNotSupervised
	}
	n, err := strconv.Atoi(os.Getenv(EnvListenFDs))
	if err != nil || n < 0 {
		return nil, fmt.Errorf("ipc: bad %s=%q", EnvListenFDs, os.Getenv(EnvListenFDs))
	}
	names := strings.Split(os.Getenv(EnvListenName), ":")
	out := make(map[string]net.Listener, n)
	for i := 0; i < n; i++ {
		name := "unknown"
		if i < len(names) && names[i] != "" {
			name = names[i]
		}
		f := os.NewFile(uintptr(listenFDsStart+i), name)
		l, err := net.FileListener(f)
		f.Close() // FileListener dup'd it
		if err != nil {
			return nil, fmt.Errorf("ipc: listener %q (fd %d): %w", name, listenFDsStart+i, err)
		}
		out[name] = l
	}
	return out, nil
}

// Control is a worker's end of the control channel.
type Control struct {
	conn    net.Conn
	Version int
	App     string
	Worker  int

	mu sync.Mutex // serialises writes to conn

	// Drain is closed when wattd asks the worker to drain.
	Drain        chan struct{}
	once         sync.Once
	drainTimeout atomic.Int64 // ms, from the drain message; set before Drain closes

	// mesh is the latest table from a mesh message. Each message decodes
	// into a fresh MeshTable that nothing else references, so the pointer
	// itself is an immutable snapshot that readers can share.
	mesh atomic.Pointer[MeshTable]

	checksMu sync.Mutex // guards checks
	checks   map[string]func() Check

	onShed atomic.Pointer[func()]

	profMu  sync.Mutex    // guards cpuProf and heapProf
	cpuProf *bytes.Buffer // the CPU profile being taken, nil when none
	// heapProf: a heap profile was started (Go samples allocations all
	// the time, at runtime.MemProfileRate; the profile is written at
	// its stop).
	heapProf bool
}

// Dial opens the control channel named by WATTD_CONTROL_FD and performs the
// handshake. A goroutine then reads wattd's messages until the channel closes.
func Dial() (*Control, error) {
	s := os.Getenv(EnvControlFD)
	if s == "" {
		return nil, ErrNotSupervised
	}
	fd, err := strconv.Atoi(s)
	if err != nil {
		return nil, fmt.Errorf("ipc: bad %s=%q", EnvControlFD, s)
	}
	f := os.NewFile(uintptr(fd), "wattd-control")
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("ipc: control fd %d: %w", fd, err)
	}
	c := &Control{conn: conn, Drain: make(chan struct{})}
	// Every version this SDK can speak, so that a wattd of an older
	// release still welcomes it (the SDK sends no binary spans frames;
	// before version 4, ipctrace sends spans in version 1's form).
	versions := make([]int, ProtocolVersion)
	for i := range versions {
		versions[i] = i + 1
	}
	hello := &Message{Type: TypeHello, Versions: versions, PID: os.Getpid(), Runtime: "go " + runtime.Version(),
		Diagnostics: SDKDiagnostics}
	if err := WriteMessage(conn, hello); err != nil {
		conn.Close()
		return nil, fmt.Errorf("ipc: send hello: %w", err)
	}
	m, err := ReadMessage(conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("ipc: read welcome: %w", err)
	}
	if m.Type != TypeWelcome {
		conn.Close()
		return nil, fmt.Errorf("ipc: handshake refused: %s %s", m.Type, m.Error)
	}
	c.Version, c.App, c.Worker = m.Version, m.App, m.Worker
	if m.Mesh != nil {
		c.mesh.Store(m.Mesh)
	}
	go c.readLoop()
	return c, nil
}

func (c *Control) readLoop() {
	for {
		m, err := ReadMessage(c.conn)
		if err != nil {
			return
		}
		switch m.Type {
		case TypeDrain:
			c.once.Do(func() {
				c.drainTimeout.Store(m.TimeoutMs)
				close(c.Drain)
			})
		case TypeMesh:
			if m.Mesh != nil {
				c.mesh.Store(m.Mesh)
			}
		case TypeCheck:
			if m.Check != nil {
				go c.answerCheck(*m.Check)
			}
		case TypeShed:
			if fn := c.onShed.Load(); fn != nil {
				go (*fn)()
			}
		case TypeDiagnose:
			if m.Diagnose != nil {
				go c.diagnose(*m.Diagnose)
			}
		case TypeMessage:
			// The SDK has no messaging handlers: the sender gets Watt's
			// "handler not found" at once rather than waiting out its
			// messagingTimeout for a reply that never comes.
			if m.ID != 0 {
				go c.Send(&Message{Type: TypeReply, ID: m.ID, Fault: HandlerNotFound(m.Name)})
			}
		}
	}
}

// OnShed sets what the worker does when wattd asks it to shed its client
// connections (see TypeShed): end each connection open now after its next
// response, so that its client connects again and lands on any worker.
// For net/http servers served through an HTTPDrainer, that is
// ctl.OnShed(drainer.Shed). fn runs in a goroutine of its own; nil unsets
// it.
func (c *Control) OnShed(fn func()) {
	if fn == nil {
		c.onShed.Store(nil)
		return
	}
	c.onShed.Store(&fn)
}

// DrainTimeout is how long wattd waits for drained after the drain it sent
// (its grace period), or 0 before Drain is closed or when wattd sent none.
func (c *Control) DrainTimeout() time.Duration {
	return time.Duration(c.drainTimeout.Load()) * time.Millisecond
}

// Mesh returns the latest mesh table wattd sent, or nil before the first
// one. The table is a snapshot shared by all callers and must not be
// modified; a later table replaces it rather than changing it, so the same
// pointer is returned until the membership changes. It is safe for
// concurrent use, and mesh.ResolverFunc(c.Mesh) makes it a mesh.Resolver.
func (c *Control) Mesh() *MeshTable { return c.mesh.Load() }

// Send writes one message; it is safe for concurrent use.
func (c *Control) Send(m *Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return WriteMessage(c.conn, m)
}

// Ready tells wattd the worker is serving on the named listeners.
func (c *Control) Ready(listeners ...string) error {
	return c.Send(&Message{Type: TypeReady, Listeners: listeners})
}

// Drained tells wattd that nothing is in flight any more.
func (c *Control) Drained() error { return c.Send(&Message{Type: TypeDrained}) }

// Exiting tells wattd that the process is about to exit with code, so that
// it replaces the worker without waiting for the process to be gone. Call
// it just before os.Exit, and only then: a worker still running the
// application's graceful shutdown time later is killed.
func (c *Control) Exiting(code int) error {
	return c.Send(&Message{Type: TypeExiting, ExitCode: code})
}

// Close closes the channel.
func (c *Control) Close() error { return c.conn.Close() }

// SetCheck registers fn as the worker's custom check of kind (CheckHealth
// or CheckReadiness) and tells wattd, which from then on runs it for its
// health checks (a failing health check for health.maxUnhealthyChecks
// checks in a row gets the worker replaced) or readiness. fn returns the
// verdict in OK, and may give the StatusCode and Body a probe should
// answer with; it runs on a goroutine of its own, and a call that
// outlasts the health timeout counts as failed.
func (c *Control) SetCheck(kind string, fn func() Check) error {
	if kind != CheckHealth && kind != CheckReadiness {
		return fmt.Errorf("ipc: unknown check kind %q", kind)
	}
	c.checksMu.Lock()
	if c.checks == nil {
		c.checks = map[string]func() Check{}
	}
	_, had := c.checks[kind]
	c.checks[kind] = fn
	c.checksMu.Unlock()
	if had {
		return nil
	}
	return c.Send(&Message{Type: TypeCheckSet, Check: &Check{Kind: kind}})
}

// answerCheck runs the check wattd asked for and sends its result; with
// no check of that kind registered the answer is a pass.
func (c *Control) answerCheck(req Check) {
	c.checksMu.Lock()
	fn := c.checks[req.Kind]
	c.checksMu.Unlock()
	res := Check{OK: true}
	if fn != nil {
		res = fn()
	}
	res.ID, res.Kind = req.ID, req.Kind
	_ = c.Send(&Message{Type: TypeChecked, Check: &res})
}

// ReadAppInfo reads the application's info file, named by WATTD_APP_INFO:
// the ids, the configuration objects, and whether tracing and request ids
// are on. It returns ErrNotSupervised outside wattd.
func ReadAppInfo() (*AppInfo, error) {
	path := os.Getenv(EnvAppInfo)
	if path == "" {
		return nil, ErrNotSupervised
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ipc: app info: %w", err)
	}
	var info AppInfo
	if err := json.Unmarshal(data, &info); err != nil {
		return nil, fmt.Errorf("ipc: app info %s: %w", path, err)
	}
	return &info, nil
}

// refused is a diagnose refused for what the worker is doing (a profile
// already taken, none taken): its answer says conflict.
type refused string

func (r refused) Error() string { return string(r) }

// diagnose answers wattd's diagnose message: Go's CPU profile (at Go's
// 100 Hz: intervalMicros is not Go's to change once the runtime runs) and
// its heap profile, written at their stop to the path wattd names, as
// pprof. A CPU profile fails to start while another runs in the process
// (net/http/pprof's, say).
func (c *Control) diagnose(d Diagnose) {
	answer := Diagnose{ID: d.ID, Kind: d.Kind}
	err := func() error {
		c.profMu.Lock()
		defer c.profMu.Unlock()
		switch d.Kind {
		case DiagCPUProfileStart:
			if c.cpuProf != nil {
				return refused("a CPU profile is already being taken")
			}
			buf := &bytes.Buffer{}
			if err := pprof.StartCPUProfile(buf); err != nil {
				// Its only failure: a profile of the program's own runs.
				return refused("another CPU profile runs in the program: " + err.Error())
			}
			c.cpuProf = buf
		case DiagCPUProfileStop:
			if c.cpuProf == nil {
				return refused("no CPU profile is being taken")
			}
			pprof.StopCPUProfile()
			buf := c.cpuProf
			c.cpuProf = nil
			answer.Format = "pprof"
			return os.WriteFile(d.Path, buf.Bytes(), 0o600)
		case DiagHeapProfileStart:
			if c.heapProf {
				return refused("a heap profile is already being taken")
			}
			c.heapProf = true
		case DiagHeapProfileStop:
			if !c.heapProf {
				return refused("no heap profile is being taken")
			}
			c.heapProf = false
			answer.Format = "pprof"
			f, err := os.OpenFile(d.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		default:
			return fmt.Errorf("cannot take a %s", d.Kind)
		}
		return nil
	}()
	if err != nil {
		answer.Error = err.Error()
		var r refused
		answer.Conflict = errors.As(err, &r)
	}
	_ = c.Send(&Message{Type: TypeDiagnosed, Diagnose: &answer})
}
