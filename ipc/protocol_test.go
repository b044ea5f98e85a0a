package ipc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
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

func TestReadErrors(t *testing.T) {
	big := make([]byte, 4)
	binary.BigEndian.PutUint32(big, MaxFrame+1)
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"too large", big, ErrFrameTooLarge},
		{"cut header", []byte{0, 0}, io.ErrUnexpectedEOF},
		{"cut body", frame(`{"type":"ready"}`)[:10], io.ErrUnexpectedEOF},
	}
	for _, c := range cases {
		if _, err := ReadMessage(bytes.NewReader(c.in)); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	for _, body := range []string{`not json`, `{"no":"type"}`, `[1]`} {
		if _, err := ReadMessage(bytes.NewReader(frame(body))); err == nil {
			t.Errorf("%q accepted", body)
		}
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
		{[]int{3, 2, 1}, 1, false},
		{[]int{2, 3}, 0, true},
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
