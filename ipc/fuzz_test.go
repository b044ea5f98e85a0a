package ipc

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"runtime"
	"testing"
)

// FuzzReadMessage feeds arbitrary bytes to ReadMessage as a stream of
// frames, the way a confused or hostile worker could, and checks what the
// supervisor relies on:
//
//   - no panic, whatever the bytes;
//   - every error is exactly one of: io.EOF at a frame boundary,
//     io.ErrUnexpectedEOF when the stream ends inside a frame, or a bad
//     frame (ErrBadFrame) when the bytes that did arrive are wrong;
//   - a read consumes exactly one frame (4 + length bytes), and a frame
//     over MaxFrame is refused after its header alone;
//   - memory taken is bounded by what arrived, not by the lengths the
//     headers announce;
//   - a message that reads back is a fixed point of WriteMessage then
//     ReadMessage, so what wattd logs or forwards is what it understood.
//
// `go test` runs the seeds in testdata/fuzz/FuzzReadMessage and those
// below; `go test -fuzz FuzzReadMessage ./ipc` searches further.
func FuzzReadMessage(f *testing.F) {
	for _, m := range []*Message{
		{Type: TypeHello, Versions: []int{1}, PID: 4242, Runtime: "node v24.11.0"},
		{Type: TypeWelcome, Version: 1, App: "api", Worker: 1},
		{Type: TypeReady, Listeners: []string{ListenerHTTP, ListenerMesh}},
		{Type: TypeStats, Stats: &Stats{ELU: 0.25, HeapUsed: 1 << 24, RSS: 1 << 26, ActiveConns: 3}},
		{Type: TypeMesh, Mesh: &MeshTable{Apps: map[string]MeshApp{"api": {Endpoints: []string{"/run/api-0.sock"}, State: "running"}}, TimeoutMs: 3000}},
		{Type: TypeDrain, TimeoutMs: 10000},
		{Type: TypeDrained},
		{Type: TypeError, Error: "no common protocol version"},
	} {
		var b bytes.Buffer
		if err := WriteMessage(&b, m); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	f.Add(append(frame(`{"type":"ready"}`), frame(`{"type":"stats","stats":{"elu":1}}`)...))
	f.Add(frame(`{"type":"stats","stats":{"elu":"high"}}`))
	f.Add(frame(`{"type":"hello","versions":[1,2,3],"x":{"y":[null,true]}}`))
	f.Add([]byte{0x00, 0x10, 0x00, 0x01, '{'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	good := httpSpan(SpanBinServer, "GET", "/", "h")
	f.Add(AppendHTTPSpans(nil, []HTTPSpan{good, good}))

	f.Fuzz(func(t *testing.T, data []byte) {
		r := &countingReader{r: bytes.NewReader(data)}
		var msgs []*Message
		before := allocated()
		for {
			at := r.n
			m, err := ReadMessage(r)
			read := r.n - at
			left := len(data) - at
			if err != nil {
				took := allocated() - before
				// Only the last read can announce more than arrived; every
				// earlier one had its whole frame.
				if bound := uint64(firstChunk + 64*len(data) + 16<<10); took > bound {
					t.Fatalf("reading %d bytes allocated %d (bound %d)", len(data), took, bound)
				}
				checkReadError(t, data[at:], read, err)
				break
			}
			if left < 4 {
				t.Fatalf("message %+v from %d bytes", m, left)
			}
			n := int(binary.BigEndian.Uint32(data[at:]))
			if n > MaxFrame || read != 4+n {
				t.Fatalf("frame of length %d: read %d bytes", n, read)
			}
			if m.Type == "" {
				t.Fatalf("message without a type: %+v", m)
			}
			msgs = append(msgs, m)
		}
		for _, m := range msgs {
			checkRoundTrip(t, m)
		}
	})
}

// checkReadError checks that err is what rest (the stream from the failed
// read on, of which read bytes were consumed) deserves.
func checkReadError(t *testing.T, rest []byte, read int, err error) {
	t.Helper()
	switch {
	case err == io.EOF:
		if len(rest) != 0 || read != 0 {
			t.Fatalf("io.EOF with %d bytes left (%d read)", len(rest), read)
		}
	case err == io.ErrUnexpectedEOF:
		if len(rest) >= 4 && len(rest) >= 4+int(binary.BigEndian.Uint32(rest)) {
			t.Fatalf("io.ErrUnexpectedEOF with the whole frame there: % x", rest)
		}
		if len(rest) == 0 {
			t.Fatal("io.ErrUnexpectedEOF on an empty stream")
		}
	case errors.Is(err, ErrFrameTooLarge):
		if len(rest) < 4 || binary.BigEndian.Uint32(rest) <= MaxFrame || read != 4 {
			t.Fatalf("%v: header % x, %d bytes read", err, rest[:min(4, len(rest))], read)
		}
	case errors.Is(err, ErrBadFrame):
		if len(rest) < 4 || read != 4+int(binary.BigEndian.Uint32(rest)) {
			t.Fatalf("%v after %d bytes of % x", err, read, rest)
		}
		// A well-formed object with a type is bad only when a known member
		// has the wrong JSON type, which decoding into Message reports.
		var m Message
		if json.Unmarshal(rest[4:read], &m) == nil && m.Type != "" {
			t.Fatalf("%v for a valid message: %s", err, rest[4:read])
		}
	default:
		t.Fatalf("unexpected error class: %v", err)
	}
}

// checkRoundTrip: writing m and reading it back gives a message that writes
// the same bytes again.
func checkRoundTrip(t *testing.T, m *Message) {
	t.Helper()
	var b bytes.Buffer
	if err := WriteMessage(&b, m); err != nil {
		enc, _ := json.Marshal(m)
		if errors.Is(err, ErrFrameTooLarge) && len(enc) > MaxFrame {
			return // escaping can grow a message read at the limit past it
		}
		t.Fatalf("write back %+v: %v", m, err)
	}
	first := append([]byte(nil), b.Bytes()...)
	m2, err := ReadMessage(&b)
	if err != nil {
		t.Fatalf("read back %q: %v", first, err)
	}
	if b.Len() != 0 {
		t.Fatalf("%d bytes left after reading back %q", b.Len(), first)
	}
	var again bytes.Buffer
	if err := WriteMessage(&again, m2); err != nil {
		t.Fatalf("write back twice: %v", err)
	}
	if !bytes.Equal(first, again.Bytes()) {
		t.Fatalf("not a fixed point:\n%q\n%q", first, again.Bytes())
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func allocated() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}
