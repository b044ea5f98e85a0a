package supervisor

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/config"
)

// messengerWorker is the "messenger" test worker: it speaks the messaging
// frames by hand on the control channel. Every message is answered with
// its data and who answered, except these names:
//
//	mute    never answered
//	crash   the worker exits with status 3 instead of answering
//
// The entrypoint's worker also serves GET /send?to=APP&name=N&data=JSON,
// which sends that message and answers with the reply frame as JSON.
func messengerWorker() int {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	conn, err := rawControl()
	if err != nil {
		fmt.Fprintln(os.Stderr, "messenger:", err)
		return 124
	}
	var wmu sync.Mutex
	write := func(m *ipc.Message) {
		wmu.Lock()
		defer wmu.Unlock()
		ipc.WriteMessage(conn, m)
	}
	write(&ipc.Message{Type: ipc.TypeHello, Versions: []int{ipc.ProtocolVersion}, PID: os.Getpid()})
	welcome, err := ipc.ReadMessage(conn)
	if err != nil || welcome.Type != ipc.TypeWelcome {
		fmt.Fprintln(os.Stderr, "messenger: no welcome:", err)
		return 124
	}
	var mu sync.Mutex
	waiting := map[uint64]chan *ipc.Message{}
	var seq uint64
	go func() {
		for {
			m, err := ipc.ReadMessage(conn)
			if err != nil {
				return
			}
			switch m.Type {
			case ipc.TypeDrain:
				write(&ipc.Message{Type: ipc.TypeDrained})
			case ipc.TypeReply:
				mu.Lock()
				ch := waiting[m.ID]
				delete(waiting, m.ID)
				mu.Unlock()
				if ch != nil {
					ch <- m
				}
			case ipc.TypeMessage:
				switch m.Name {
				case "mute":
				case "crash":
					os.Exit(3)
				default:
					data, _ := json.Marshal(map[string]any{
						"app": welcome.App, "worker": welcome.Worker, "from": m.From, "data": m.Data,
					})
					write(&ipc.Message{Type: ipc.TypeReply, ID: m.ID, Data: data})
				}
			}
		}
	}()
	lns, _ := ipc.Listeners()
	if ln := lns[ipc.ListenerHTTP]; ln != nil {
		go http.Serve(ln, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			mu.Lock()
			seq++
			id := seq
			ch := make(chan *ipc.Message, 1)
			waiting[id] = ch
			mu.Unlock()
			m := &ipc.Message{Type: ipc.TypeMessage, ID: id, To: q.Get("to"), Name: q.Get("name")}
			if d := q.Get("data"); d != "" {
				m.Data = json.RawMessage(d)
			}
			write(m)
			select {
			case reply := <-ch:
				json.NewEncoder(rw).Encode(reply)
			case <-time.After(15 * time.Second):
				http.Error(rw, "no reply", http.StatusGatewayTimeout)
			}
		}))
	}
	write(&ipc.Message{Type: ipc.TypeReady, Listeners: []string{ipc.ListenerHTTP}})
	<-term
	return 0
}

// TestMessagingBetweenWorkers runs the routing with real worker processes:
// round robin over the target's workers, an unknown application, a
// timeout, and a target that dies before answering.
func TestMessagingBetweenWorkers(t *testing.T) {
	tr := startRuntime(t, func(c *config.Config) { c.MessagingTimeout = 500 * time.Millisecond },
		testApp{id: "front", behaviour: "messenger", protocol: true},
		testApp{id: "back", workers: 2, behaviour: "messenger", protocol: true})
	tr.waitReady("back", 0)
	tr.waitReady("back", 1)
	tr.waitReady("front", 0)

	send := func(to, name, data string) *ipc.Message {
		t.Helper()
		body, err := tr.get("/send?to=" + to + "&name=" + name + "&data=" + data)
		if err != nil {
			t.Fatalf("send %s/%s: %v", to, name, err)
		}
		var m ipc.Message
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatalf("send %s/%s: %q: %v", to, name, body, err)
		}
		return &m
	}
	type echo struct {
		App    string
		Worker int
		From   string
		Data   []int
	}
	workers := map[int]bool{}
	for range 2 {
		r := send("back", "sum", "[1,2]")
		var e echo
		if r.Type != ipc.TypeReply || r.Fault != nil || json.Unmarshal(r.Data, &e) != nil ||
			e.App != "back" || e.From != "front" || len(e.Data) != 2 {
			t.Fatalf("reply %+v (%s)", r, r.Data)
		}
		workers[e.Worker] = true
	}
	if len(workers) != 2 {
		t.Fatalf("two messages went to the same worker: %v", workers)
	}

	r := send("nowhere", "sum", "1")
	if r.Fault == nil || r.Fault.Message != `Cannot send a message to application "nowhere": No workers available (no such application; known applications: front, back)` {
		t.Fatalf("unknown application: %+v", r.Fault)
	}

	start := time.Now()
	r = send("back", "mute", "")
	if r.Fault == nil || !strings.HasSuffix(r.Fault.Message, "Timeout while waiting for a response.") || r.Fault.Code != codeMessaging {
		t.Fatalf("mute: %+v", r.Fault)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("timed out after %v, before messagingTimeout", d)
	}

	r = send("back", "crash", "")
	if r.Fault == nil || !strings.HasSuffix(r.Fault.Message, "The communication channel was closed before receiving a response.") {
		t.Fatalf("crash: %+v", r.Fault)
	}
	// The crashed slot comes back, and both workers answer again; the
	// table holds nothing for the dead one.
	eventually(t, "back worker replaced", func() bool { return len(tr.starts("back")) >= 3 })
	tr.waitReady("back", 0)
	tr.waitReady("back", 1)
	for range 4 {
		if r := send("back", "sum", "[3,4]"); r.Fault != nil {
			t.Fatalf("after the crash: %+v", r.Fault)
		}
	}
	eventually(t, "no message pending", func() bool { return tr.msgs.pendingCount() == 0 })
}
