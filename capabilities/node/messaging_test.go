package node

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/wattd/wattd/ipc"
)

// TestMessagingHandlers plays wattd delivering messages to a worker's
// platformatic.messaging handlers and checks each answer frame.
func TestMessagingHandlers(t *testing.T) {
	w := startWorker(t, workerOpts{app: "messaging", entrypoint: true})
	w.handshake()
	w.expect(ipc.TypeReady)

	ask := func(id uint64, name, data string) *ipc.Message {
		t.Helper()
		m := &ipc.Message{Type: ipc.TypeMessage, ID: id, From: "other", FromWorker: 1, Name: name}
		if data != "" {
			m.Data = json.RawMessage(data)
		}
		w.send(m)
		r := w.expect(ipc.TypeReply)
		if r.ID != id {
			t.Fatalf("%s: reply to id %d, want %d", name, r.ID, id)
		}
		return r
	}

	r := ask(11, "echo", `{"a":[1,"x",null]}`)
	if r.Fault != nil || string(r.Data) != `{"data":{"a":[1,"x",null]},"from":{"application":"other","worker":1},"reqId":"11"}` {
		t.Fatalf("echo: %s %+v", r.Data, r.Fault)
	}

	r = ask(12, "throws", "")
	if f := r.Fault; f == nil || f.Code != "PLT_ITC_HANDLER_FAILED" || f.Message != "Handler failed with error: nope" ||
		f.Name != "FastifyError" || f.Cause == nil || f.Cause.Code != "42" || f.Cause.Message != "nope" ||
		!strings.Contains(f.Cause.Stack, "server.js") {
		t.Fatalf("throws: %+v %+v", r.Fault, r.Fault.Cause)
	}

	if r = ask(13, "nothing", ""); r.Fault != nil || r.Data != nil {
		t.Fatalf("undefined answer came back as %s %+v", r.Data, r.Fault)
	}

	r = ask(14, "missing", "1")
	if f := r.Fault; f == nil || f.Code != "PLT_ITC_HANDLER_NOT_FOUND" || f.Message != `Handler not found for request: "missing"` {
		t.Fatalf("missing: %+v", r.Fault)
	}

	for i, name := range []string{"bigint", "huge"} {
		r = ask(uint64(15+i), name, "")
		if f := r.Fault; f == nil || f.Code != "PLT_RUNTIME_MESSAGING_ERROR" || !strings.Contains(f.Message, `the reply of the "`+name+`" handler cannot be sent`) {
			t.Fatalf("%s: %+v", name, r.Fault)
		}
	}

	w.send(&ipc.Message{Type: ipc.TypeNotify, From: "other", Name: "note", Data: json.RawMessage(`{"n":1}`)})
	if ev := w.event("note"); ev["notification"] != true || ev["application"] != "messaging" || ev["data"].(map[string]any)["n"] != float64(1) {
		t.Fatalf("notification: %v", ev)
	}
}

// TestMessagingSend plays wattd answering a worker's messaging.send().
func TestMessagingSend(t *testing.T) {
	w := startWorker(t, workerOpts{app: "messaging", entrypoint: true})
	w.handshake()
	w.expect(ipc.TypeReady)

	type result struct {
		Resolved  json.RawMessage
		Undefined bool
		Rejected  *struct {
			IsError          bool
			Message, Code    string
			Name             string
			StatusCode       int
			HandlerErrorCode string
			HandlerError     *struct{ Message, Code, Stack string }
		}
	}
	call := func(to, name, data string, answer func(m *ipc.Message)) result {
		t.Helper()
		done := make(chan map[string]any, 1)
		go func() {
			q := url.Values{"to": {to}, "name": {name}}
			if data != "" {
				q.Set("data", data)
			}
			done <- getJSON(t, tcpClient(), "http://"+w.tcpAddr+"/send?"+q.Encode())
		}()
		m := w.expect(ipc.TypeMessage)
		if m.ID == 0 || m.To != to || m.Name != name || (data != "" && string(m.Data) != data) {
			t.Fatalf("message frame %+v (%s)", m, m.Data)
		}
		answer(m)
		b, _ := json.Marshal(<-done)
		var r result
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}

	r := call("back", "sum", `[1,2]`, func(m *ipc.Message) {
		// A reply for an id this worker never used is ignored.
		w.send(&ipc.Message{Type: ipc.TypeReply, ID: m.ID + 1000, Data: json.RawMessage(`"forged"`)})
		w.send(&ipc.Message{Type: ipc.TypeReply, ID: m.ID, Data: json.RawMessage(`{"sum":3}`)})
	})
	if string(r.Resolved) != `{"sum":3}` {
		t.Fatalf("resolved %s", r.Resolved)
	}

	r = call("back", "nothing", "", func(m *ipc.Message) {
		w.send(&ipc.Message{Type: ipc.TypeReply, ID: m.ID})
	})
	if !r.Undefined || r.Resolved != nil {
		t.Fatalf("resolved %s", r.Resolved)
	}

	r = call("back", "fail", `{"x":1}`, func(m *ipc.Message) {
		w.send(&ipc.Message{Type: ipc.TypeReply, ID: m.ID, Fault: &ipc.Fault{
			Message: "Handler failed with error: kaput", Code: "PLT_ITC_HANDLER_FAILED", Name: "FastifyError",
			Cause: &ipc.Fault{Message: "kaput", Code: "E_KAPUT", Stack: "Error: kaput\n    at remote.js:1:1"},
		}})
	})
	if e := r.Rejected; e == nil || !e.IsError || e.Message != "Handler failed with error: kaput" || e.Code != "PLT_ITC_HANDLER_FAILED" ||
		e.Name != "FastifyError" || e.StatusCode != 500 || e.HandlerErrorCode != "E_KAPUT" || e.HandlerError == nil ||
		e.HandlerError.Message != "kaput" || !strings.Contains(e.HandlerError.Stack, "remote.js") {
		t.Fatalf("rejected %+v", r.Rejected)
	}
}
