package supervisor

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wattd/wattd/ipc"
)

// fakeEndpoint is a worker as the messenger sees it, in memory: what it
// is sent arrives on got; block makes Send wait, as a worker that does not
// read its control channel does.
type fakeEndpoint struct {
	got      chan *ipc.Message
	exited   chan struct{}
	exitOnce sync.Once
	block    chan struct{} // nil: Send returns at once
	sendErr  error         // non-nil: every write fails with it, as to a closed socket
}

func newFake() *fakeEndpoint {
	return &fakeEndpoint{got: make(chan *ipc.Message, 16384), exited: make(chan struct{})}
}

func (f *fakeEndpoint) Send(m *ipc.Message) error {
	if f.sendErr != nil {
		return f.sendErr
	}
	if f.block != nil {
		select {
		case <-f.block:
		case <-f.exited:
			return errors.New("closed")
		}
	}
	if _, err := json.Marshal(m); err != nil {
		return err
	}
	f.got <- m
	return nil
}

func (f *fakeEndpoint) Exited() <-chan struct{} { return f.exited }
func (f *fakeEndpoint) exit()                   { f.exitOnce.Do(func() { close(f.exited) }) }

// next waits for the endpoint's next message.
func (f *fakeEndpoint) next(t *testing.T) *ipc.Message {
	t.Helper()
	select {
	case m := <-f.got:
		return m
	case <-time.After(pollFor):
		t.Fatal("no message arrived")
		return nil
	}
}

// msgWorld is a messenger with applications "a" (one worker) and "b"
// (two), all fake.
type msgWorld struct {
	ms    *messenger
	a     msgPeer
	b     []msgPeer
	aFake *fakeEndpoint
	bFake []*fakeEndpoint
}

func newMsgWorld(t *testing.T, timeout time.Duration) *msgWorld {
	w := &msgWorld{aFake: newFake(), bFake: []*fakeEndpoint{newFake(), newFake()}}
	w.a = msgPeer{w: w.aFake, app: "a"}
	for i, f := range w.bFake {
		w.b = append(w.b, msgPeer{w: f, app: "b", worker: i})
	}
	w.ms = newMessenger(zap.NewNop(), timeout, func(app string) ([]msgPeer, error) {
		switch app {
		case "a":
			return []msgPeer{w.a}, nil
		case "b":
			var live []msgPeer
			for _, p := range w.b {
				if !closed(p.w.Exited()) {
					live = append(live, p)
				}
			}
			if len(live) == 0 {
				return nil, errors.New("No workers available (worker 0 exited, worker 1 exited)")
			}
			return live, nil
		}
		return nil, errors.New("No workers available (no such application; known applications: a, b)")
	})
	t.Cleanup(func() {
		w.aFake.exit()
		for _, f := range w.bFake {
			f.exit()
		}
	})
	return w
}

// which returns the index of the b worker that got a message, and it.
func (w *msgWorld) which(t *testing.T) (int, *ipc.Message) {
	t.Helper()
	deadline := time.After(pollFor)
	for {
		for i, f := range w.bFake {
			select {
			case m := <-f.got:
				return i, m
			default:
			}
		}
		select {
		case <-deadline:
			t.Fatal("no b worker got the message")
		case <-time.After(time.Millisecond):
		}
	}
}

func msg(id uint64, to, name, data string) *ipc.Message {
	m := &ipc.Message{Type: ipc.TypeMessage, ID: id, To: to, Name: name}
	if data != "" {
		m.Data = json.RawMessage(data)
	}
	return m
}

func waitPending(t *testing.T, ms *messenger, n int) {
	t.Helper()
	deadline := time.Now().Add(pollFor)
	for ms.pendingCount() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages pending, want %d", ms.pendingCount(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestMessengerRoutesRoundRobinAndAnswers(t *testing.T) {
	w := newMsgWorld(t, time.Minute)
	seen := map[int]int{}
	for id := uint64(1); id <= 4; id++ {
		w.ms.route(w.a, msg(id, "b", "sum", `[1,2]`))
		i, got := w.which(t)
		seen[i]++
		if got.Type != ipc.TypeMessage || got.From != "a" || got.Name != "sum" || string(got.Data) != `[1,2]` || got.ID == 0 {
			t.Fatalf("delivered %+v", got)
		}
		w.ms.route(w.b[i], &ipc.Message{Type: ipc.TypeReply, ID: got.ID, Data: json.RawMessage(`{"sum":3}`)})
		r := w.aFake.next(t)
		if r.Type != ipc.TypeReply || r.ID != id || string(r.Data) != `{"sum":3}` || r.Fault != nil {
			t.Fatalf("reply %+v", r)
		}
	}
	if seen[0] != 2 || seen[1] != 2 {
		t.Fatalf("not round robin: %v", seen)
	}
	waitPending(t, w.ms, 0)
}

func TestMessengerUndefinedAndFaultPassThrough(t *testing.T) {
	w := newMsgWorld(t, time.Minute)
	w.ms.route(w.a, msg(1, "b", "nothing", ""))
	i, got := w.which(t)
	if got.Data != nil {
		t.Fatalf("undefined data became %s", got.Data)
	}
	w.ms.route(w.b[i], &ipc.Message{Type: ipc.TypeReply, ID: got.ID})
	if r := w.aFake.next(t); r.Data != nil || r.Fault != nil {
		t.Fatalf("undefined answer became %+v", r)
	}
	w.ms.route(w.a, msg(2, "b", "fail", ""))
	i, got = w.which(t)
	f := &ipc.Fault{Message: "Handler failed with error: no", Code: "PLT_ITC_HANDLER_FAILED", Cause: &ipc.Fault{Message: "no", Code: "E_NO"}}
	w.ms.route(w.b[i], &ipc.Message{Type: ipc.TypeReply, ID: got.ID, Fault: f})
	r := w.aFake.next(t)
	if r.ID != 2 || r.Fault == nil || r.Fault.Code != "PLT_ITC_HANDLER_FAILED" || r.Fault.Cause == nil || r.Fault.Cause.Code != "E_NO" {
		t.Fatalf("fault reply %+v", r)
	}
}

func TestMessengerUnknownApplication(t *testing.T) {
	w := newMsgWorld(t, time.Minute)
	w.ms.route(w.a, msg(9, "nowhere", "sum", `1`))
	r := w.aFake.next(t)
	if r.ID != 9 || r.Fault == nil || r.Fault.Code != codeMessaging ||
		r.Fault.Message != `Cannot send a message to application "nowhere": No workers available (no such application; known applications: a, b)` {
		t.Fatalf("reply %+v", r.Fault)
	}
	waitPending(t, w.ms, 0)
}

func TestMessengerTimeoutThenLateReplyDropped(t *testing.T) {
	w := newMsgWorld(t, 50*time.Millisecond)
	w.ms.route(w.a, msg(3, "b", "slow", `1`))
	i, got := w.which(t)
	r := w.aFake.next(t)
	if r.ID != 3 || r.Fault == nil || !strings.HasSuffix(r.Fault.Message, `"b": Timeout while waiting for a response.`) {
		t.Fatalf("timeout reply %+v", r.Fault)
	}
	waitPending(t, w.ms, 0)
	// The late answer goes nowhere; the next message's answer is the next
	// thing the sender reads.
	w.ms.route(w.b[i], &ipc.Message{Type: ipc.TypeReply, ID: got.ID, Data: json.RawMessage(`"late"`)})
	w.ms.route(w.a, msg(4, "b", "ok", `1`))
	i, got = w.which(t)
	w.ms.route(w.b[i], &ipc.Message{Type: ipc.TypeReply, ID: got.ID, Data: json.RawMessage(`"ok"`)})
	if r := w.aFake.next(t); r.ID != 4 || string(r.Data) != `"ok"` {
		t.Fatalf("after the timeout the sender read %+v", r)
	}
}

// A worker answering a message sent to another worker, or one never sent,
// changes nothing: the right worker's answer is what the sender gets.
func TestMessengerRefusesReplyFromAnotherWorker(t *testing.T) {
	w := newMsgWorld(t, time.Minute)
	w.ms.route(w.a, msg(5, "b", "sum", `1`))
	i, got := w.which(t)
	liar := w.b[1-i]
	w.ms.route(liar, &ipc.Message{Type: ipc.TypeReply, ID: got.ID, Data: json.RawMessage(`"forged"`)})
	for _, id := range []uint64{0, got.ID + 1, 1 << 62} {
		w.ms.route(liar, &ipc.Message{Type: ipc.TypeReply, ID: id, Data: json.RawMessage(`"forged"`)})
	}
	if n := w.ms.pendingCount(); n != 1 {
		t.Fatalf("%d pending after the forged replies, want 1", n)
	}
	w.ms.route(w.b[i], &ipc.Message{Type: ipc.TypeReply, ID: got.ID, Data: json.RawMessage(`"real"`)})
	if r := w.aFake.next(t); r.ID != 5 || string(r.Data) != `"real"` {
		t.Fatalf("sender got %+v", r)
	}
	// A message without an id cannot be answered and is not routed.
	w.ms.route(w.a, msg(0, "b", "sum", `1`))
	waitPending(t, w.ms, 0)
}

func TestMessengerTargetExitFailsPending(t *testing.T) {
	w := newMsgWorld(t, time.Minute)
	w.ms.route(w.a, msg(6, "b", "sum", `1`))
	i, _ := w.which(t)
	w.bFake[i].exit()
	r := w.aFake.next(t)
	if r.ID != 6 || r.Fault == nil || !strings.HasSuffix(r.Fault.Message, `"b": The communication channel was closed before receiving a response.`) {
		t.Fatalf("reply %+v", r.Fault)
	}
	waitPending(t, w.ms, 0)
	// The other worker takes the next one.
	w.ms.route(w.a, msg(7, "b", "sum", `1`))
	j, _ := w.which(t)
	if j == i {
		t.Fatalf("message went to the exited worker %d", i)
	}
}

// A message whose write failed never reached a handler: it goes to
// another ready worker, and fails, without the write's own error, only
// when no worker takes it.
func TestMessengerUnwrittenGoesToAnotherWorker(t *testing.T) {
	w := newMsgWorld(t, time.Minute)
	w.bFake[0].sendErr = errors.New("write unix @->@: use of closed network connection")
	for id := uint64(1); id <= 6; id++ {
		w.ms.route(w.a, msg(id, "b", "sum", `1`))
	}
	for range 6 {
		m := w.bFake[1].next(t)
		w.ms.route(w.b[1], &ipc.Message{Type: ipc.TypeReply, ID: m.ID, Data: json.RawMessage(`2`)})
		if r := w.aFake.next(t); r.Fault != nil {
			t.Fatalf("reply %+v", r.Fault)
		}
	}
	waitPending(t, w.ms, 0)

	w.bFake[1].sendErr = w.bFake[0].sendErr
	w.ms.route(w.a, msg(7, "b", "sum", `1`))
	r := w.aFake.next(t)
	want := `Cannot send a message to application "b": the worker it was sent to exited before it got the message, and no other worker of "b" is ready`
	if r.ID != 7 || r.Fault == nil || r.Fault.Message != want {
		t.Fatalf("reply %+v", r.Fault)
	}
	waitPending(t, w.ms, 0)
}

// Messages still queued for a worker when it exits were never written:
// they go to the other worker, in order.
func TestMessengerQueuedAtExitGoesToAnotherWorker(t *testing.T) {
	w := newMsgWorld(t, time.Minute)
	w.bFake[0].block = make(chan struct{})
	w.bFake[1].block = make(chan struct{})
	for id := uint64(1); id <= 10; id++ {
		w.ms.route(w.a, msg(id, "b", "sum", `1`))
	}
	waitPending(t, w.ms, 10)
	w.bFake[0].exit()
	close(w.bFake[1].block)
	seen := map[uint64]bool{}
	for range 10 {
		m := w.bFake[1].next(t)
		seen[m.ID] = true
		w.ms.route(w.b[1], &ipc.Message{Type: ipc.TypeReply, ID: m.ID, Data: json.RawMessage(`2`)})
	}
	for range 10 {
		if r := w.aFake.next(t); r.Fault != nil {
			t.Fatalf("reply to %d: %+v", r.ID, r.Fault)
		}
	}
	if len(seen) != 10 {
		t.Fatalf("worker 1 got %d distinct messages", len(seen))
	}
	waitPending(t, w.ms, 0)
}

func TestMessengerOriginExitDropsPending(t *testing.T) {
	w := newMsgWorld(t, time.Minute)
	origin := newFake()
	t.Cleanup(origin.exit)
	from := msgPeer{w: origin, app: "c"}
	w.ms.route(from, msg(1, "b", "sum", `1`))
	i, got := w.which(t)
	waitPending(t, w.ms, 1)
	origin.exit()
	waitPending(t, w.ms, 0)
	// Its late reply is dropped without a sound.
	w.ms.route(w.b[i], &ipc.Message{Type: ipc.TypeReply, ID: got.ID, Data: json.RawMessage(`1`)})
}

// A worker that does not read its channel never blocks the sender's
// reader: once its outbox is full, by count or by bytes, further messages
// fail at once.
func TestMessengerSlowWorkerDoesNotBlock(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limits msgLimits
		data   string
	}{
		{"count", msgLimits{outboxLen: 100, outboxBytes: 16 << 20, maxWaiting: 100000}, `1`},
		{"bytes", msgLimits{outboxLen: 100000, outboxBytes: 64 << 10, maxWaiting: 100000}, `"` + strings.Repeat("x", 4000) + `"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newMsgWorld(t, time.Minute)
			w.ms.limits = tc.limits
			for _, f := range w.bFake {
				f.block = make(chan struct{})
			}
			start := time.Now()
			for id := 1; id <= 300; id++ {
				w.ms.route(w.a, msg(uint64(id), "b", "sum", tc.data))
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("routing to stuck workers took %v", d)
			}
			r := w.aFake.next(t)
			if r.Fault == nil || !strings.Contains(r.Fault.Message, "congested") {
				t.Fatalf("first answer %+v", r.Fault)
			}
			for _, f := range w.bFake {
				close(f.block)
			}
		})
	}
}

// A long burst to workers that read is not congestion.
func TestMessengerBurst(t *testing.T) {
	w := newMsgWorld(t, time.Minute)
	const n = 10000
	for id := 1; id <= n; id++ {
		w.ms.route(w.a, msg(uint64(id), "b", "sum", `[1,2,3]`))
	}
	for range n {
		i, got := w.which(t)
		w.ms.route(w.b[i], &ipc.Message{Type: ipc.TypeReply, ID: got.ID, Data: json.RawMessage(`6`)})
	}
	for range n {
		if r := w.aFake.next(t); r.Fault != nil {
			t.Fatalf("reply %d: %+v", r.ID, r.Fault)
		}
	}
	waitPending(t, w.ms, 0)
}

func TestMessengerTooLarge(t *testing.T) {
	w := newMsgWorld(t, time.Minute)
	big := `"` + strings.Repeat("x", ipc.MaxFrame) + `"`
	w.ms.route(w.a, msg(1, "b", "sum", big))
	r := w.aFake.next(t)
	if r.ID != 1 || r.Fault == nil || !strings.Contains(r.Fault.Message, "over 1048576 bytes") {
		t.Fatalf("reply %+v", r.Fault)
	}
	waitPending(t, w.ms, 0)
}

func TestMessengerNotifyReachesEveryOtherWorker(t *testing.T) {
	w := newMsgWorld(t, time.Minute)
	w.ms.route(w.a, &ipc.Message{Type: ipc.TypeNotify, To: "b", Name: "ping", Data: json.RawMessage(`{"n":1}`)})
	for _, f := range w.bFake {
		m := f.next(t)
		if m.Type != ipc.TypeNotify || m.From != "a" || m.Name != "ping" || string(m.Data) != `{"n":1}` {
			t.Fatalf("notification %+v", m)
		}
	}
	// To its own application: the other workers only.
	w.ms.route(w.b[0], &ipc.Message{Type: ipc.TypeNotify, To: "b", Name: "ping"})
	if m := w.bFake[1].next(t); m.From != "b" || m.FromWorker != 0 {
		t.Fatalf("notification %+v", m)
	}
	w.ms.route(w.a, &ipc.Message{Type: ipc.TypeNotify, To: "nowhere", Name: "ping"})
	w.ms.route(w.a, &ipc.Message{Type: ipc.TypeNotify, To: "b", Name: "again"})
	if m := w.bFake[0].next(t); m.Name != "again" {
		t.Fatalf("worker 0 got %+v: a notification to itself", m)
	}
	waitPending(t, w.ms, 0)
}

// A sender can have only so many messages waiting; the next one fails at
// once, and an answer makes room again.
func TestMessengerBoundsWaitingPerSender(t *testing.T) {
	w := newMsgWorld(t, time.Minute)
	const maxWaiting = 1000
	w.ms.limits.maxWaiting = maxWaiting
	for id := 1; id <= maxWaiting; id++ {
		w.ms.route(w.a, msg(uint64(id), "b", "sum", `1`))
	}
	waitPending(t, w.ms, maxWaiting)
	w.ms.route(w.a, msg(maxWaiting+1, "b", "sum", `1`))
	r := w.aFake.next(t)
	if r.ID != maxWaiting+1 || r.Fault == nil || !strings.Contains(r.Fault.Message, "messages waiting for a reply already") {
		t.Fatalf("reply %+v", r.Fault)
	}
	i, got := w.which(t)
	w.ms.route(w.b[i], &ipc.Message{Type: ipc.TypeReply, ID: got.ID, Data: json.RawMessage(`1`)})
	if r := w.aFake.next(t); r.Fault != nil {
		t.Fatalf("answer %+v", r.Fault)
	}
	w.ms.route(w.a, msg(maxWaiting+2, "b", "sum", `1`))
	waitPending(t, w.ms, maxWaiting)
	// Another sender is not limited by this one.
	other := msgPeer{w: newFake(), app: "c"}
	t.Cleanup(other.w.(*fakeEndpoint).exit)
	w.ms.route(other, msg(1, "b", "sum", `1`))
	waitPending(t, w.ms, maxWaiting+1)
}

// TestMessengerWarnsOncePerWorker: a worker that keeps sending frames that
// break the rules (no id, replies to messages it was not sent) gets one
// warning line per 30 s, not one per frame, so it cannot flood wattd's log.
func TestMessengerWarnsOncePerWorker(t *testing.T) {
	w := newMsgWorld(t, time.Minute)
	core, logs := observer.New(zap.WarnLevel)
	w.ms.log = zap.New(core)
	w.ms.route(w.a, msg(5, "b", "sum", `1`))
	i, got := w.which(t)
	liar := w.b[1-i]
	for range 1000 {
		w.ms.route(w.a, msg(0, "b", "sum", `1`))
		w.ms.route(liar, &ipc.Message{Type: ipc.TypeReply, ID: got.ID})
	}
	if n := logs.Len(); n != 2 {
		t.Fatalf("%d warnings for 2000 bad frames of 2 workers, want 1 per worker", n)
	}
	// The next one after the period says how many were left out.
	w.ms.mu.Lock()
	w.ms.now = func() time.Time { return time.Now().Add(msgWarnEvery) }
	w.ms.mu.Unlock()
	w.ms.route(w.a, msg(0, "b", "sum", `1`))
	last := logs.All()[logs.Len()-1]
	if got := last.ContextMap()["warningsLeftOut"]; got != uint64(999) {
		t.Fatalf("warningsLeftOut = %v, want 999: %v", got, last.ContextMap())
	}
}

// TestMessengerForgetsWarnedWorkers: a worker warned about is forgotten
// when it ends, though it never had an outbox.
func TestMessengerForgetsWarnedWorkers(t *testing.T) {
	w := newMsgWorld(t, time.Minute)
	var fakes []*fakeEndpoint
	for i := range 20 {
		f := newFake()
		fakes = append(fakes, f)
		w.ms.route(msgPeer{w: f, app: "a", worker: i}, msg(0, "b", "sum", `1`))
	}
	for _, f := range fakes {
		f.exit()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		w.ms.mu.Lock()
		n := len(w.ms.warned)
		w.ms.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d ended workers still kept for their warnings", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMessengerRouteTellsWhatWentNowhere: route reports the frames that
// reached someone (not paced, framePace) apart from those that did not.
func TestMessengerRouteTellsWhatWentNowhere(t *testing.T) {
	w := newMsgWorld(t, time.Minute)
	if !w.ms.route(w.a, msg(1, "b", "sum", `[1]`)) {
		t.Fatal("a message delivered went nowhere")
	}
	i, got := w.which(t)
	if w.ms.route(w.b[1-i], &ipc.Message{Type: ipc.TypeReply, ID: got.ID}) {
		t.Fatal("a reply from the worker the message was not sent to went somewhere")
	}
	if !w.ms.route(w.b[i], &ipc.Message{Type: ipc.TypeReply, ID: got.ID}) {
		t.Fatal("the reply of the worker the message was sent to went nowhere")
	}
	w.aFake.next(t)
	if w.ms.route(w.b[i], &ipc.Message{Type: ipc.TypeReply, ID: got.ID}) {
		t.Fatal("a second reply, nobody waiting, went somewhere")
	}
	if w.ms.route(w.a, msg(0, "b", "sum", `[1]`)) {
		t.Fatal("a message without an id went somewhere")
	}
	// Failed back to its sender at once: it reached nobody.
	if w.ms.route(w.a, msg(2, "nowhere", "sum", `1`)) {
		t.Fatal("a message to no application went somewhere")
	}
	if r := w.aFake.next(t); r.ID != 2 || r.Fault == nil {
		t.Fatalf("a message to no application was not failed back to its sender: %+v", r)
	}
	if !w.ms.route(w.a, &ipc.Message{Type: ipc.TypeNotify, To: "b", Name: "ping"}) {
		t.Fatal("a notification to b went nowhere")
	}
	if w.ms.route(w.a, &ipc.Message{Type: ipc.TypeNotify, To: "nowhere", Name: "ping"}) {
		t.Fatal("a notification to no application went somewhere")
	}
	// a's only worker is the sender, which a notification skips.
	if w.ms.route(w.a, &ipc.Message{Type: ipc.TypeNotify, To: "a", Name: "ping"}) {
		t.Fatal("a notification to the sender's own application, of one worker, went somewhere")
	}
}
