package supervisor

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/logs"
)

// Messaging between applications (platformatic.messaging in the worker):
// a worker sends a message to an application, wattd hands it to one ready
// worker of that application and routes the reply back. wattd is the only
// place that knows which message went where, so it alone keeps the pending
// table, times messages out and fails them when a worker exits; workers only
// ever see ids of their own channel.

// Codes of the faults wattd makes itself, with Watt's names so code that
// branches on them keeps working.
const (
	codeMessaging = "PLT_RUNTIME_MESSAGING_ERROR"
)

// msgLimits bound what wattd holds for workers, so that no worker can make
// it grow without limit.
type msgLimits struct {
	// outboxBytes and outboxLen bound the frames waiting to be written to
	// one worker that reads its control channel slower than others write
	// to it. A message over either fails at once rather than being held.
	outboxBytes int
	outboxLen   int
	// maxWaiting bounds the messages one worker may have waiting for a
	// reply, so that one sending in a loop to handlers that never answer
	// cannot grow the table until the timeouts catch up.
	maxWaiting int
}

// defaultMsgLimits allow a burst (Promise.all over a long list) far beyond
// what apps do, at a cost of tens of MiB per worker at worst.
var defaultMsgLimits = msgLimits{outboxBytes: 16 << 20, outboxLen: 100000, maxWaiting: 100000}

// msgEndpoint is what the messenger needs of a worker: a way to write to
// it and to know when it is gone. *proc is the real one.
type msgEndpoint interface {
	Send(*ipc.Message) error
	Exited() <-chan struct{}
}

// msgPeer is a worker as the messenger names it.
type msgPeer struct {
	w      msgEndpoint
	app    string
	worker int
}

// pendingMsg is a message delivered (or being delivered) and not answered.
type pendingMsg struct {
	origin   msgPeer
	originID uint64 // the id the origin gave it
	target   msgPeer
	timer    *time.Timer
	// tried are the workers the message went to and that never got it
	// (their write failed, or they exited with it still queued), so that
	// it goes to each worker of its application at most once.
	tried []msgEndpoint
}

// messenger routes messages between workers. It never blocks on a worker:
// every write goes through the target's outbox, and a full outbox fails
// the message.
type messenger struct {
	log     *zap.Logger
	timeout time.Duration
	limits  msgLimits
	// targets lists the workers of an application that can take a message
	// now, or says why none can.
	targets func(app string) ([]msgPeer, error)

	mu      sync.Mutex // guards the fields below
	next    uint64     // last routing id handed out
	pending map[uint64]*pendingMsg
	waiting map[msgEndpoint]int // pending messages per sender
	rr      map[string]int      // next worker index per application
	boxes   map[msgEndpoint]*outbox
	// warned limits each worker's protocol warnings to one line per
	// msgWarnEvery, so that a worker cannot flood wattd's log.
	warned map[msgEndpoint]*logs.Limiter
	// now is the clock of the warnings (time.Now; tests move it on).
	now func() time.Time
}

// msgWarnEvery is the least time between two warnings about one worker's
// messaging frames.
const msgWarnEvery = 30 * time.Second

// warn logs a warning about a frame from's worker sent, unless one was
// logged for that worker within msgWarnEvery; the next one that is says
// how many were left out.
func (ms *messenger) warn(from msgPeer, msg string, fields ...zap.Field) {
	ms.mu.Lock()
	w := ms.warned[from.w]
	if w == nil {
		w = &logs.Limiter{}
		ms.warned[from.w] = w
		// Forgotten when the worker ends, whether or not it ever had an
		// outbox (gone): a worker that starts, sends one bad frame and
		// dies, again and again, must not grow the map.
		go func() {
			<-from.w.Exited()
			ms.mu.Lock()
			delete(ms.warned, from.w)
			ms.mu.Unlock()
		}()
	}
	skipped, ok := w.Allow(ms.now(), msgWarnEvery)
	ms.mu.Unlock()
	if !ok {
		return
	}
	fields = append([]zap.Field{zap.String("from", from.app), zap.Int("fromWorker", from.worker)}, fields...)
	if skipped > 0 {
		fields = append(fields, zap.Uint64("warningsLeftOut", skipped))
	}
	ms.log.Warn(msg, fields...)
}

func newMessenger(log *zap.Logger, timeout time.Duration, targets func(string) ([]msgPeer, error)) *messenger {
	return &messenger{
		log:     log,
		timeout: timeout,
		limits:  defaultMsgLimits,
		targets: targets,
		pending: map[uint64]*pendingMsg{},
		waiting: map[msgEndpoint]int{},
		rr:      map[string]int{},
		boxes:   map[msgEndpoint]*outbox{},
		warned:  map[msgEndpoint]*logs.Limiter{},
		now:     time.Now,
	}
}

// messagingError is the fault of a message wattd could not get answered,
// worded as Watt words it: `Cannot send a message to application "b": …`.
func messagingError(app, detail string) *ipc.Fault {
	return &ipc.Fault{Code: codeMessaging, Message: `Cannot send a message to application "` + app + `": ` + detail}
}

// route takes one messaging frame a worker sent. It is called from the
// worker's control reader and returns without waiting on any worker. It
// reports whether the frame went anywhere: a message handed to a worker
// of its target, a reply delivered, a notification handed to at least one
// worker. The others (a message without an id, one failed back to its
// sender at once because its target has no worker or the sender too many
// messages waiting, a reply nobody waits for or to a message the worker
// was not sent, a notification nobody gets) are counted against the
// worker's pace (framePace), as a stats report is: messaging that reaches
// someone is the apps' own work and is not paced, while a worker sending
// messages nowhere in a loop is a worker flooding its channel.
func (ms *messenger) route(from msgPeer, m *ipc.Message) bool {
	switch m.Type {
	case ipc.TypeMessage:
		return ms.send(from, m)
	case ipc.TypeReply:
		return ms.reply(from, m)
	case ipc.TypeNotify:
		return ms.notify(from, m)
	}
	return false
}

func (ms *messenger) send(from msgPeer, m *ipc.Message) bool {
	if m.ID == 0 {
		ms.warn(from, "message without an id; ignored", zap.String("messageName", m.Name))
		return false
	}
	fail := func(f *ipc.Fault) {
		ms.enqueue(from, &ipc.Message{Type: ipc.TypeReply, ID: m.ID, Fault: f})
	}
	peers, err := ms.targets(m.To)
	if err != nil {
		fail(messagingError(m.To, err.Error()))
		return false
	}
	ms.mu.Lock()
	if ms.waiting[from.w] >= ms.limits.maxWaiting {
		ms.mu.Unlock()
		fail(messagingError(m.To, fmt.Sprintf("the sender has %d messages waiting for a reply already", ms.limits.maxWaiting)))
		return false
	}
	// The sender's outbox now, not with the reply: what it waits for must
	// be dropped if it exits first.
	ms.boxLocked(from)
	i := ms.rr[m.To]
	if i == 0 && len(peers) > 1 {
		// A random first pick, as Watt does, so that several senders that
		// start together do not all begin with worker 0.
		i = rand.IntN(len(peers))
	}
	target := peers[i%len(peers)]
	ms.rr[m.To] = i%len(peers) + 1
	ms.next++
	rid := ms.next
	p := &pendingMsg{origin: from, originID: m.ID, target: target}
	ms.pending[rid] = p
	ms.waiting[from.w]++
	p.timer = time.AfterFunc(ms.timeout, func() { ms.expire(rid) })
	ms.mu.Unlock()
	out := &ipc.Message{
		Type: ipc.TypeMessage, ID: rid, From: from.app, FromWorker: from.worker,
		Name: m.Name, Data: m.Data,
	}
	err = ms.enqueue(target, out)
	if errors.Is(err, errWorkerGone) {
		// It exited since it was listed: nothing was written.
		ms.redeliver(rid, out, target.w)
		return true
	}
	if err != nil {
		ms.fail(rid, messagingError(m.To, err.Error()))
		return false
	}
	return true
}

// redeliver hands message rid, which the worker it went to (was) never
// got, to another ready worker of its application: no handler ran it, so
// another may. Each worker is tried once, and only while the message is
// still waiting (its timeout bounds the whole); when no worker takes it,
// it fails.
func (ms *messenger) redeliver(rid uint64, m *ipc.Message, missed msgEndpoint) {
	for {
		ms.mu.Lock()
		p, ok := ms.pending[rid]
		if !ok || p.target.w != missed {
			// Timed out, its sender exited, or handed on already.
			ms.mu.Unlock()
			return
		}
		p.tried = append(p.tried, missed)
		app := p.target.app
		tried := append([]msgEndpoint(nil), p.tried...)
		ms.mu.Unlock()
		peers, _ := ms.targets(app)
		var next *msgPeer
		for i := range peers {
			if !closed(peers[i].w.Exited()) && !slices.Contains(tried, peers[i].w) {
				next = &peers[i]
				break
			}
		}
		if next == nil {
			ms.fail(rid, messagingError(app, fmt.Sprintf("the worker it was sent to exited before it got the message, and no other worker of %q is ready", app)))
			return
		}
		ms.mu.Lock()
		if p, ok = ms.pending[rid]; !ok || p.target.w != missed {
			ms.mu.Unlock()
			return
		}
		p.target = *next
		ms.mu.Unlock()
		if err := ms.enqueue(*next, m); err == nil {
			return
		}
		missed = next.w
	}
}

// reply routes an answer to the worker that sent the message. Only the
// worker the message was delivered to may answer it: any other reply is a
// confused or lying worker and goes nowhere.
func (ms *messenger) reply(from msgPeer, m *ipc.Message) bool {
	ms.mu.Lock()
	p, ok := ms.pending[m.ID]
	if ok && p.target.w != from.w {
		ms.mu.Unlock()
		ms.warn(from, "reply to a message the worker was not sent; ignored", zap.Uint64("id", m.ID))
		return false
	}
	if ok {
		ms.removeLocked(m.ID, p)
	}
	ms.mu.Unlock()
	if !ok {
		// Timed out already, or its sender exited: nobody waits for it.
		ms.log.Debug("reply to a message nobody waits for; dropped",
			zap.String("from", from.app), zap.Int("fromWorker", from.worker), zap.Uint64("id", m.ID))
		return false
	}
	out := &ipc.Message{Type: ipc.TypeReply, ID: p.originID, Data: m.Data, Fault: m.Fault}
	if err := ms.enqueue(p.origin, out); err != nil && !errors.Is(err, errWorkerGone) {
		// Too large or congested: the sender still learns why.
		ms.enqueue(p.origin, &ipc.Message{Type: ipc.TypeReply, ID: p.originID,
			Fault: messagingError(p.target.app, "the reply could not be delivered: "+err.Error())})
	}
	return true
}

// notify hands a one-way message to every ready worker of the target
// application but the sender. As in Watt, nothing comes back: an unknown
// application or a worker without a handler only shows in the logs.
func (ms *messenger) notify(from msgPeer, m *ipc.Message) bool {
	peers, err := ms.targets(m.To)
	if err != nil {
		ms.log.Debug("notification not delivered", zap.String("from", from.app), zap.String("to", m.To), zap.String("messageName", m.Name), zap.Error(err))
		return false
	}
	handed := false
	for _, p := range peers {
		if p.w == from.w {
			continue
		}
		out := &ipc.Message{Type: ipc.TypeNotify, From: from.app, FromWorker: from.worker, Name: m.Name, Data: m.Data}
		if err := ms.enqueue(p, out); err != nil {
			ms.log.Debug("notification not delivered", zap.String("to", p.app), zap.Int("worker", p.worker), zap.Error(err))
			continue
		}
		handed = true
	}
	return handed
}

// expire fails a message that got no answer within the timeout.
func (ms *messenger) expire(rid uint64) {
	ms.mu.Lock()
	p, ok := ms.pending[rid]
	ms.mu.Unlock()
	if ok {
		ms.fail(rid, messagingError(p.target.app, "Timeout while waiting for a response."))
	}
}

// fail answers a pending message with f, once.
func (ms *messenger) fail(rid uint64, f *ipc.Fault) {
	ms.mu.Lock()
	p, ok := ms.pending[rid]
	if ok {
		ms.removeLocked(rid, p)
	}
	ms.mu.Unlock()
	if ok {
		ms.enqueue(p.origin, &ipc.Message{Type: ipc.TypeReply, ID: p.originID, Fault: f})
	}
}

// gone forgets a worker that exited: what it was sent and did not answer
// fails now, with Watt's wording for a closed channel, and what it sent
// is dropped, as nobody is left to read the answer. A message still
// queued for it was never written, so it goes to another worker instead.
func (ms *messenger) gone(w msgEndpoint) {
	type failed struct {
		origin msgPeer
		id     uint64
		app    string
	}
	var fails []failed
	unwritten := map[uint64]*ipc.Message{}
	ms.mu.Lock()
	if b := ms.boxes[w]; b != nil {
		for _, m := range b.queue {
			if m.Type == ipc.TypeMessage {
				unwritten[m.ID] = m
			}
		}
		b.queue, b.bytes = nil, 0
	}
	var again []*ipc.Message
	for rid, p := range ms.pending {
		switch {
		case p.origin.w == w:
			ms.removeLocked(rid, p)
		case p.target.w == w && unwritten[rid] != nil:
			again = append(again, unwritten[rid])
		case p.target.w == w:
			ms.removeLocked(rid, p)
			fails = append(fails, failed{p.origin, p.originID, p.target.app})
		}
	}
	delete(ms.boxes, w)
	ms.mu.Unlock()
	for _, f := range fails {
		ms.enqueue(f.origin, &ipc.Message{Type: ipc.TypeReply, ID: f.id,
			Fault: messagingError(f.app, "The communication channel was closed before receiving a response.")})
	}
	// In routing id order, so that messages keep their order.
	slices.SortFunc(again, func(a, b *ipc.Message) int { return cmp.Compare(a.ID, b.ID) })
	for _, m := range again {
		ms.redeliver(m.ID, m, w)
	}
}

// removeLocked takes a message out of the table. Called with mu held.
func (ms *messenger) removeLocked(rid uint64, p *pendingMsg) {
	p.timer.Stop()
	delete(ms.pending, rid)
	if ms.waiting[p.origin.w]--; ms.waiting[p.origin.w] <= 0 {
		delete(ms.waiting, p.origin.w)
	}
}

// pendingCount is for tests and status.
func (ms *messenger) pendingCount() int {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return len(ms.pending)
}

var (
	errCongested = errors.New("the worker's control channel is congested")
	errTooLarge  = fmt.Errorf("the message is over %d bytes", ipc.MaxFrame)
)

// frameOverhead is room for the members wattd adds around a message's data
// and name (type, id, from), so a message that fits the limit on the way
// in fits on the way out.
const frameOverhead = 512

// frameSize is about how many bytes m takes as a frame: its variable
// parts plus frameOverhead. A fault's cause chain is counted in full, as
// it is sent in full.
func frameSize(m *ipc.Message) int {
	n := len(m.Data) + len(m.Name) + len(m.From) + frameOverhead
	for f := m.Fault; f != nil; f = f.Cause {
		n += len(f.Message) + len(f.Code) + len(f.Name) + len(f.Stack) + 64
	}
	return n
}

// enqueue queues m for p's worker without waiting. A message that failed
// to be written later is reported through undeliverable.
func (ms *messenger) enqueue(p msgPeer, m *ipc.Message) error {
	size := frameSize(m)
	if size > ipc.MaxFrame {
		return errTooLarge
	}
	select {
	case <-p.w.Exited():
		return errWorkerGone
	default:
	}
	ms.mu.Lock()
	b := ms.boxLocked(p)
	if b.bytes+size > ms.limits.outboxBytes || len(b.queue) >= ms.limits.outboxLen {
		ms.mu.Unlock()
		return errCongested
	}
	b.queue = append(b.queue, m)
	b.bytes += size
	ms.mu.Unlock()
	select {
	case b.signal <- struct{}{}:
	default:
	}
	return nil
}

// boxLocked returns p's outbox, made on first use together with the
// goroutine that writes it and that forgets p once it exits. Called with
// mu held.
func (ms *messenger) boxLocked(p msgPeer) *outbox {
	b, ok := ms.boxes[p.w]
	if !ok {
		b = &outbox{signal: make(chan struct{}, 1)}
		ms.boxes[p.w] = b
		go ms.deliver(p, b)
	}
	return b
}

// outbox is what waits to be written to one worker. A slice rather than a
// buffered channel: a burst of small messages may be long, and a channel
// would hold its whole capacity for every worker from the start.
type outbox struct {
	queue  []*ipc.Message // guarded by messenger.mu
	bytes  int            // what queue holds, by frameSize; guarded by messenger.mu
	signal chan struct{}  // poked when queue grows
}

// deliver writes p's outbox until the worker exits, then forgets it.
func (ms *messenger) deliver(p msgPeer, b *outbox) {
	for {
		select {
		case <-p.w.Exited():
			ms.gone(p.w)
			return
		case <-b.signal:
		}
		for {
			ms.mu.Lock()
			if len(b.queue) == 0 {
				b.queue = nil // let a long burst's array go
				ms.mu.Unlock()
				break
			}
			m := b.queue[0]
			b.queue[0] = nil
			b.queue = b.queue[1:]
			b.bytes -= frameSize(m)
			ms.mu.Unlock()
			if err := p.w.Send(m); err != nil {
				ms.undeliverable(p, m, err)
			}
		}
	}
}

// undeliverable handles a write that failed: the worker never got the
// message, so it goes to another worker of the application, or fails at
// once for its sender instead of waiting out the timeout.
func (ms *messenger) undeliverable(p msgPeer, m *ipc.Message, err error) {
	ms.log.Debug("messaging frame not written", zap.String("app", p.app), zap.Int("worker", p.worker), zap.String("type", m.Type), zap.Error(err))
	if m.Type == ipc.TypeMessage {
		ms.redeliver(m.ID, m, p.w)
	}
}

// messageTargets lists the ready workers of application id that speak the
// control protocol, for the messenger.
func (rt *Runtime) messageTargets(id string) ([]msgPeer, error) {
	a, ok := rt.lookup(id)
	if !ok {
		var disabled []string
		if cur := rt.current.Load(); cur != nil {
			disabled = cur.Disabled
		}
		for _, d := range disabled {
			if strings.EqualFold(d, id) {
				return nil, fmt.Errorf("No workers available (application %q is disabled: \"enabled\": false in watt.json)", d)
			}
		}
		ids := make([]string, 0, len(rt.appList()))
		for _, a := range rt.appList() {
			ids = append(ids, a.id)
		}
		return nil, fmt.Errorf("No workers available (no such application; known applications: %s)", strings.Join(ids, ", "))
	}
	var peers []msgPeer
	var down []string
	for _, s := range a.slotList() {
		if s.removing.Load() {
			continue
		}
		s.mu.Lock()
		st, w := s.state, s.cur
		s.mu.Unlock()
		if st == StateReady && w != nil {
			if ep, ok := w.(msgEndpoint); ok && closed(w.Hello()) {
				peers = append(peers, msgPeer{w: ep, app: id, worker: s.index})
				continue
			}
			down = append(down, fmt.Sprintf("worker %d does not speak the control protocol", s.index))
			continue
		}
		down = append(down, fmt.Sprintf("worker %d %s", s.index, st))
	}
	if len(peers) == 0 {
		return nil, fmt.Errorf("No workers available (%s)", strings.Join(down, ", "))
	}
	return peers, nil
}
