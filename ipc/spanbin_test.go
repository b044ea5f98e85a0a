package ipc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
)

func httpSpan(kind byte, method, target, host string) HTTPSpan {
	s := HTTPSpan{Kind: kind, Status: 200, StartMs: 1764672000123.5, EndMs: 1764672000124, Method: method, Target: target, Host: host}
	s.TraceID[15], s.SpanID[7] = 1, 2
	return s
}

// TestHTTPSpansRoundTrip: records with hex ids (version 2) and with raw
// ids (version 3), in one frame, read back as written.
func TestHTTPSpansRoundTrip(t *testing.T) {
	in := []HTTPSpan{httpSpan(SpanBinServer, "GET", "/a?b=c", "h:1"), httpSpan(SpanBinClient, "POST", "http://x.plt.local/y", "x.plt.local")}
	in[1].Flags, in[1].Port, in[1].ParentSpanID[0] = SpanBinParent|SpanBinIncomplete, 80, 9
	for _, s := range in[:2] {
		s.Flags |= SpanBinRawIDs
		s.TraceID[3], s.SpanID[0] = 0xfe, 0x80
		in = append(in, s)
	}
	m, err := ReadMessage(bytes.NewReader(AppendHTTPSpans(nil, in)))
	if err != nil || m.Type != TypeSpans {
		t.Fatalf("%+v %v", m, err)
	}
	out, dropped, err := DecodeHTTPSpans(m.SpansBinary)
	if dropped != 0 || err != nil || len(out) != 4 {
		t.Fatalf("%d spans, %d dropped: %v", len(out), dropped, err)
	}
	for i := range in {
		a, b := in[i], out[i]
		b.MethodTarget = ""
		if a != b {
			t.Errorf("%d: %+v, want %+v", i, b, a)
		}
	}
	if out[0].MethodTarget != "GET /a?b=c" || !out[1].HasParent() || out[0].HasParent() || !out[3].HasParent() {
		t.Errorf("method and target %q, parents %v %v %v", out[0].MethodTarget, out[0].HasParent(), out[1].HasParent(), out[3].HasParent())
	}
}

// TestHTTPSpansInvalid: a record that breaks a rule costs that record; one
// whose lengths run past the frame costs it and the rest of the frame.
func TestHTTPSpansInvalid(t *testing.T) {
	good := httpSpan(SpanBinServer, "GET", "/", "h")
	cases := []struct {
		name string
		bad  func(*HTTPSpan)
		want string
	}{
		{"kind", func(s *HTTPSpan) { s.Kind = 7 }, "kind 7"},
		{"zero trace id", func(s *HTTPSpan) { s.TraceID = [16]byte{} }, "trace id"},
		{"zero span id", func(s *HTTPSpan) { s.SpanID = [8]byte{} }, "span id"},
		{"zero parent", func(s *HTTPSpan) { s.Flags |= SpanBinParent }, "parent span id"},
		{"end before start", func(s *HTTPSpan) { s.EndMs = s.StartMs - 1 }, "before start"},
		{"no time", func(s *HTTPSpan) { s.StartMs = 0 }, "epoch"},
		{"empty method", func(s *HTTPSpan) { s.Method = "" }, "method"},
		{"method with a space", func(s *HTTPSpan) { s.Method = "G T" }, "HTTP token"},
		{"long target", func(s *HTTPSpan) { s.Target = strings.Repeat("a", MaxSpanTarget+1) }, "over the limit"},
		{"status over 999", func(s *HTTPSpan) { s.Status = 1000 }, "status 1000 is not 0 to 999"},
		{"status 65535", func(s *HTTPSpan) { s.Status = 65535 }, "status 65535"},
	}
	for _, raw := range []byte{0, SpanBinRawIDs} {
		for _, c := range cases {
			good := good
			good.Flags |= raw
			bad := good
			c.bad(&bad)
			frame := AppendHTTPSpans(nil, []HTTPSpan{good, bad, good})
			out, dropped, err := DecodeHTTPSpans(frame[5:])
			if len(out) != 2 || dropped != 1 || !errors.Is(err, ErrInvalidSpan) || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "span 1:") {
				t.Errorf("%s (flags %#x): %d kept, %d dropped, %v", c.name, raw, len(out), dropped, err)
			}
		}
	}
	// A raw-id record cut inside its ids.
	rawGood := good
	rawGood.Flags |= SpanBinRawIDs | SpanBinParent
	rawGood.ParentSpanID[0] = 1
	p0 := AppendHTTPSpans(nil, []HTTPSpan{rawGood})[5:]
	if out, dropped, err := DecodeHTTPSpans(p0[:2+spanBinFixedRaw+4]); len(out) != 0 || dropped != 1 || !strings.Contains(err.Error(), "cut short") {
		t.Errorf("cut raw ids: %d kept, %d dropped, %v", len(out), dropped, err)
	}

	// Lengths past the end: the record and all after it are lost.
	frame := AppendHTTPSpans(nil, []HTTPSpan{good, good, good})
	p := frame[5:]
	one := (len(p) - 2) / 3
	binary.LittleEndian.PutUint16(p[2+one+spanBinFixedHex+1:], 60000) // second record's target length
	out, dropped, err := DecodeHTTPSpans(p)
	if len(out) != 1 || dropped != 2 || !strings.Contains(err.Error(), "cut short") {
		t.Errorf("cut record: %d kept, %d dropped, %v", len(out), dropped, err)
	}
	// A count over the limit.
	many := make([]HTTPSpan, MaxSpansPerFrame+3)
	for i := range many {
		many[i] = good
	}
	out, dropped, _ = DecodeHTTPSpans(AppendHTTPSpans(nil, many)[5:])
	if len(out) != MaxSpansPerFrame || dropped != 3 {
		t.Errorf("over the count: %d kept, %d dropped", len(out), dropped)
	}
	if out, dropped, _ := DecodeHTTPSpans([]byte{1}); len(out) != 0 || dropped != 1 {
		t.Errorf("no count: %d %d", len(out), dropped)
	}
}

// TestHTTPSpansStatusRange: the binary form takes the statuses the JSON
// form takes, 0 to 999, and no others.
func TestHTTPSpansStatusRange(t *testing.T) {
	var in []HTTPSpan
	for _, st := range []uint16{0, 200, 999, 1000, 65535} {
		s := httpSpan(SpanBinServer, "GET", "/", "h")
		s.Status = st
		in = append(in, s)
	}
	out, dropped, err := DecodeHTTPSpans(AppendHTTPSpans(nil, in)[5:])
	if len(out) != 3 || dropped != 2 || out[2].Status != 999 {
		t.Errorf("%d kept, %d dropped (%v), want 0, 200 and 999 kept", len(out), dropped, err)
	}
}

// TestHTTPSpansClaimedCount: a frame that claims more records than its
// bytes can hold costs what it holds. The decoder writes only the entries
// of dst it decodes into (the rest keep what they had, so nothing is
// cleared past them), and without a dst it makes room for the records
// the bytes allow, not for the count.
func TestHTTPSpansClaimedCount(t *testing.T) {
	sentinel := httpSpan(SpanBinClient, "PUT", "/kept", "sentinel")
	dst := make([]HTTPSpan, MaxSpansPerFrame)
	for i := range dst {
		dst[i] = sentinel
	}
	good := httpSpan(SpanBinServer, "GET", "/", "h")
	good.Flags = SpanBinRawIDs // the smallest records
	for _, records := range []int{0, 1, 2} {
		p := AppendHTTPSpans(nil, slices.Repeat([]HTTPSpan{good}, records))[5:]
		binary.LittleEndian.PutUint16(p, MaxSpansPerFrame) // the count lies
		out, dropped, err := DecodeHTTPSpansInto(dst, p)
		if len(out) != records || dropped != MaxSpansPerFrame-records || !strings.Contains(fmt.Sprint(err), "cut short") {
			t.Errorf("%d records claiming %d: %d kept, %d dropped, %v", records, MaxSpansPerFrame, len(out), dropped, err)
		}
		if dst[records] != (HTTPSpan{}) {
			t.Errorf("%d records: the entry decoded into last still holds %+v", records, dst[records])
		}
		for i := records + 1; i < len(dst); i++ {
			if dst[i] != sentinel {
				t.Fatalf("%d records: entry %d past those written was changed: %+v", records, i, dst[i])
			}
		}
		out, _, _ = DecodeHTTPSpans(p)
		if cap(out) > records+1 {
			t.Errorf("%d records claiming %d: room made for %d", records, MaxSpansPerFrame, cap(out))
		}
	}
}

// TestHTTPSpansInvalidUTF8: invalid bytes are replaced, valid text is
// kept as it is.
func TestHTTPSpansInvalidUTF8(t *testing.T) {
	s := httpSpan(SpanBinServer, "GET", "/caf\xc3\xa9\xff", "h\xfe")
	out, dropped, err := DecodeHTTPSpans(AppendHTTPSpans(nil, []HTTPSpan{s})[5:])
	if dropped != 0 {
		t.Fatal(err)
	}
	if out[0].Target != "/café\uFFFD" || out[0].Host != "h\uFFFD" || out[0].Method != "GET" {
		t.Errorf("target %q host %q method %q", out[0].Target, out[0].Host, out[0].Method)
	}
}

// FuzzDecodeHTTPSpans: any payload decodes without a panic, and every span
// kept has valid UTF-8 strings and valid ids.
func FuzzDecodeHTTPSpans(f *testing.F) {
	good := httpSpan(SpanBinServer, "GET", "/", "h")
	f.Add(AppendHTTPSpans(nil, []HTTPSpan{good, good})[5:])
	raw := good
	raw.Flags = SpanBinRawIDs | SpanBinParent
	raw.ParentSpanID[2] = 3
	f.Add(AppendHTTPSpans(nil, []HTTPSpan{raw, good})[5:])
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		out, dropped, _ := DecodeHTTPSpans(p)
		if dropped < 0 || len(out) > MaxSpansPerFrame {
			t.Fatalf("%d kept, %d dropped", len(out), dropped)
		}
		for _, s := range out {
			if s.TraceID == [16]byte{} || s.SpanID == [8]byte{} || s.Method == "" || len(s.MethodTarget) != len(s.Method)+1+len(s.Target) {
				t.Fatalf("kept %+v", s)
			}
		}
	})
}

// TestReadMessagePooled: frames of every kind and size read as
// ReadMessage reads them; a large binary frame's payload stays as read
// until it is released, and its buffer serves the next frame.
func TestReadMessagePooled(t *testing.T) {
	big := make([]HTTPSpan, 3000)
	for i := range big {
		big[i] = httpSpan(SpanBinServer, "GET", "/"+strings.Repeat("x", i%50), "h")
	}
	bigFrame := AppendHTTPSpans(nil, big)
	if len(bigFrame) <= firstChunk {
		t.Fatalf("the large frame has %d bytes", len(bigFrame))
	}
	stats, _ := EncodeFrame(&Message{Type: TypeStats, Stats: &Stats{ELU: 0.5}})
	largeJSON, _ := EncodeFrame(&Message{Type: TypeStats, Stats: &Stats{ELU: 0.25, AppMetrics: strings.Repeat("m", 2*firstChunk)}})
	var stream bytes.Buffer
	for _, f := range [][]byte{stats, bigFrame, largeJSON, bigFrame, AppendHTTPSpans(nil, big[:2])} {
		stream.Write(f)
	}
	r := bytes.NewReader(stream.Bytes())

	m, release, err := ReadMessagePooled(r)
	if err != nil || m.Type != TypeStats || m.Stats.ELU != 0.5 {
		t.Fatalf("small JSON: %+v %v", m, err)
	}
	release()
	m, release, err = ReadMessagePooled(r)
	if err != nil || !bytes.Equal(m.SpansBinary, bigFrame[5:]) {
		t.Fatalf("large binary frame: %v", err)
	}
	first := m.SpansBinary
	// Held: the next large frame cannot be read into it.
	m2, release2, err := ReadMessagePooled(r)
	if err != nil || m2.Stats == nil || m2.Stats.ELU != 0.25 || len(m2.Stats.AppMetrics) != 2*firstChunk {
		t.Fatalf("large JSON: %v", err)
	}
	release2()
	if !bytes.Equal(first, bigFrame[5:]) {
		t.Fatal("a held frame changed under its holder")
	}
	release()
	m, release, err = ReadMessagePooled(r)
	if err != nil || !bytes.Equal(m.SpansBinary, bigFrame[5:]) {
		t.Fatalf("second large frame: %v", err)
	}
	release()
	m, release, err = ReadMessagePooled(r)
	if err != nil || m.SpansBinary == nil {
		t.Fatalf("small binary frame: %v", err)
	}
	release()
	if _, release, err := ReadMessagePooled(r); err != io.EOF || release == nil {
		t.Fatalf("end: %v", err)
	}
	// Cut short inside a large frame, and over the limit.
	if _, _, err := ReadMessagePooled(bytes.NewReader(bigFrame[:len(bigFrame)-9])); err != io.ErrUnexpectedEOF {
		t.Errorf("cut frame: %v", err)
	}
	if _, _, err := ReadMessagePooled(bytes.NewReader([]byte{0x7f, 0, 0, 0, '{'})); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("huge frame: %v", err)
	}
}
