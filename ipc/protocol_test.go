package ipc

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	msgs := []*Message{
		{Type: TypeHello, Versions: []int{1, 2}, PID: 42, Runtime: "node v24"},
		{Type: TypeWelcome, Version: 1, App: "api", Worker: 3},
		{Type: TypeReady, Listeners: []string{ListenerHTTP, ListenerMesh}},
		{Type: TypeStats, Stats: &Stats{ELU: 0.5, HeapUsed: 1 << 20, ActiveConns: 2, RequestsDone: 9}},
		{Type: TypeDrain, TimeoutMs: 1500},
		{Type: TypeDrained},
		{Type: TypeExiting, ExitCode: 7},
		{Type: TypeMessage, ID: 7, To: "api", Name: "sum", Data: json.RawMessage(`[1,2]`)},
		{Type: TypeMessage, ID: 42, From: "web", FromWorker: 1, Name: "nothing"},
		{Type: TypeReply, ID: 42, Data: json.RawMessage(`{"a":null}`)},
		{Type: TypeReply, ID: 7, Fault: &Fault{Message: "Handler failed with error: no", Code: "PLT_ITC_HANDLER_FAILED",
			Name: "FastifyError", Cause: &Fault{Message: "no", Code: "E_NO", Stack: "Error: no\n    at x.js:1:1"}}},
		{Type: TypeNotify, To: "api", Name: "ping", Data: json.RawMessage(`"x"`)},
		{Type: TypeCheckSet, Check: &Check{Kind: CheckHealth}},
		{Type: TypeCheck, Check: &Check{ID: 7, Kind: CheckReadiness}},
		{Type: TypeChecked, Check: &Check{ID: 7, Kind: CheckReadiness, StatusCode: 503, Body: "warming up"}},
		{Type: TypeHealthSignals, Signals: []json.RawMessage{json.RawMessage(`{"type":"eventLoopDelay","max":12.5}`)}},
	}
	var buf bytes.Buffer
	for _, m := range msgs {
		if err := WriteMessage(&buf, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range msgs {
		got, err := ReadMessage(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	}
	if _, err := ReadMessage(&buf); err != io.EOF {
		t.Fatalf("clean end: %v, want io.EOF", err)
	}
}

func frame(body string) []byte {
	b := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(b, uint32(len(body)))
	copy(b[4:], body)
	return b
}

// TestReadErrors: what a peer sent wrong wraps ErrBadFrame; a channel that
// ended does not, so a receiver can tell a broken peer from a gone one.
func TestReadErrors(t *testing.T) {
	big := make([]byte, 4)
	binary.BigEndian.PutUint32(big, MaxFrame+1)
	huge := []byte{0xff, 0xff, 0xff, 0xff}
	cases := []struct {
		name string
		in   []byte
		want error
		bad  bool
	}{
		{"empty", nil, io.EOF, false},
		{"cut header", []byte{0, 0}, io.ErrUnexpectedEOF, false},
		{"header only", frame(`{"type":"ready"}`)[:4], io.ErrUnexpectedEOF, false},
		{"cut body", frame(`{"type":"ready"}`)[:10], io.ErrUnexpectedEOF, false},
		{"too large", big, ErrFrameTooLarge, true},
		{"length 4 GiB", huge, ErrFrameTooLarge, true},
		{"empty payload", frame(``), ErrBadFrame, true},
		{"not json", frame(`not json`), ErrBadFrame, true},
		{"array", frame(`[1]`), ErrBadFrame, true},
		{"null", frame(`null`), ErrBadFrame, true},
		{"no type", frame(`{"no":"type"}`), ErrBadFrame, true},
		{"empty type", frame(`{"type":""}`), ErrBadFrame, true},
		{"type not a string", frame(`{"type":5}`), ErrBadFrame, true},
		{"member of the wrong type", frame(`{"type":"hello","pid":"x"}`), ErrBadFrame, true},
		{"trailing bytes", frame(`{"type":"ready"}x`), ErrBadFrame, true},
	}
	for _, c := range cases {
		_, err := ReadMessage(bytes.NewReader(c.in))
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if errors.Is(err, ErrBadFrame) != c.bad {
			t.Errorf("%s: %v: bad frame %v, want %v", c.name, err, !c.bad, c.bad)
		}
	}
}

// TestReadAllocatesWhatArrives: a header announcing a 1 MiB frame that never
// comes must not cost 1 MiB.
func TestReadAllocatesWhatArrives(t *testing.T) {
	in := frame(strings.Repeat(" ", 100))
	binary.BigEndian.PutUint32(in, MaxFrame)
	const rounds = 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range rounds {
		if _, err := ReadMessage(bytes.NewReader(in)); err != io.ErrUnexpectedEOF {
			t.Fatalf("%v, want io.ErrUnexpectedEOF", err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / rounds; per > 2*firstChunk {
		t.Fatalf("reading a 104-byte stream allocated %d bytes", per)
	}
	// A frame of the full size still reads.
	body := `{"type":"error","error":"` + strings.Repeat("x", MaxFrame-30) + `"}`
	m, err := ReadMessage(bytes.NewReader(frame(body)))
	if err != nil || m.Type != TypeError || len(m.Error) != MaxFrame-30 {
		t.Fatalf("full-size frame: %v", err)
	}
}

// Unknown members and types are ignored, so minor additions need no version bump.
func TestUnknownMembersIgnored(t *testing.T) {
	m, err := ReadMessage(bytes.NewReader(frame(`{"type":"future","x":{"y":1},"pid":7}`)))
	if err != nil || m.Type != "future" || m.PID != 7 {
		t.Fatalf("%+v %v", m, err)
	}
}

func TestNegotiate(t *testing.T) {
	cases := []struct {
		offered []int
		want    int
		err     bool
	}{
		{[]int{1}, 1, false},
		{[]int{2, 1}, 2, false},
		{[]int{3, 2}, 3, false},
		{[]int{4, 3}, 4, false},
		{[]int{1, 2, 3, 4}, 4, false},
		{[]int{5, 4}, 5, false},
		{[]int{7, 6, 1}, 1, false},
		{[]int{6, 7}, 0, true},
		{nil, 0, true},
		{[]int{0, -1}, 0, true},
	}
	for _, c := range cases {
		v, err := Negotiate(c.offered)
		if (err != nil) != c.err || v != c.want {
			t.Errorf("Negotiate(%v) = %d, %v", c.offered, v, err)
		}
		if err != nil && !errors.Is(err, ErrNoCommonVersion) {
			t.Errorf("error %v does not wrap ErrNoCommonVersion", err)
		}
	}
}

func TestWriteTooLarge(t *testing.T) {
	m := &Message{Type: TypeError, Error: string(make([]byte, MaxFrame))}
	if err := WriteMessage(io.Discard, m); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("%v", err)
	}
}

// TestStatsSanitized: what no worker can truthfully report is bounded,
// what it can is kept as it is.
func TestStatsSanitized(t *testing.T) {
	good := Stats{ELU: 0.4, ActiveConns: 3, Lag: &EventLoopLag{Max: 0.02, P99: 0.01}, Delay: &EventLoopDelay{Max: 0.03, P99: 0.02}}
	if got, changed := good.Sanitized(); changed || got.ELU != 0.4 || got.Lag.Max != 0.02 || got.Delay.Max != 0.03 {
		t.Errorf("a sane report changed: %+v %v", got, changed)
	}
	bad := Stats{ELU: 1.7e308, ActiveConns: -7, Lag: &EventLoopLag{Max: math.Inf(1), Min: -1, P99: math.NaN()}, Delay: &EventLoopDelay{Max: 1e300, P99: -2}}
	got, changed := bad.Sanitized()
	if !changed || got.ELU != 1 || got.ActiveConns != 0 || got.Lag.Max != maxLagSeconds || got.Lag.Min != 0 || got.Lag.P99 != 0 ||
		got.Delay.Max != maxLagSeconds || got.Delay.P99 != 0 {
		t.Errorf("bounded: %+v lag %+v delay %+v, %v", got, *got.Lag, *got.Delay, changed)
	}
	if bad.Lag.Min != -1 {
		t.Error("the report sanitized was changed in place")
	}
	if got, _ := (Stats{ELU: -5}).Sanitized(); got.ELU != 0 {
		t.Errorf("elu -5 gave %v", got.ELU)
	}
	// Memory no machine has is not measured; a big heap of a real one is kept.
	if got, changed := (Stats{HeapUsed: math.MaxUint64, HeapTotal: 1 << 62, RSS: 64 << 30}).Sanitized(); !changed || got.HeapUsed != 0 || got.HeapTotal != 0 || got.RSS != 64<<30 {
		t.Errorf("absurd memory figures: %+v, %v", got, changed)
	}
}
