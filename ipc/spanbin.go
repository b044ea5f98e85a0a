package ipc

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"unicode/utf8"
	"unsafe"
)

// The binary spans frame (protocol versions 2 and 3). A worker that traces every
// request sends as many spans as it serves requests, so their form is the
// cheapest one both ends can write and read: fixed fields in little-endian
// order and the strings as they are, no JSON on either side. It carries
// HTTP spans only, server and client, with the figures of OpenTelemetry's
// HTTP conventions in raw form; wattd derives the span's name and
// attributes (supervisor/telemetry). The JSON spans message stays for any
// other kind of span.
//
// A frame's payload is:
//
//	u8  SpansBinaryTag
//	u16 count of the records that follow
//	count records:
//	  u8  kind: SpanBinServer or SpanBinClient
//	  u8  flags: SpanBinParent, SpanBinIncomplete, SpanBinTLS, SpanBinRawIDs
//	  u16 HTTP status code, 0 for none
//	  f64 start, f64 end: Unix epoch milliseconds
//	  trace id, span id: 16 and 8 bytes with SpanBinRawIDs (version 3),
//	      else 32 and 16 lower-case hex digits
//	  parent span id, with SpanBinParent only: 8 bytes or 16 hex digits,
//	      as the other ids
//	  u8  length of the method M, u16 length of the target T
//	  M+1+T bytes: the method, one space, the target (UTF-8)
//	  u16 length of the host H, then H bytes (UTF-8)
//	  u16 port
//
// For a server span the target is the request target as received
// (path?query) and the host the Host header (name[:port]), port 0; for a
// client span the target is the URL called without its query, the host
// its host name and port its port. Every integer is little-endian.
const (
	SpansBinaryTag = 0x01

	SpanBinServer = 1
	SpanBinClient = 2

	// SpanBinParent: a parent span id follows the span id.
	SpanBinParent = 0x01
	// SpanBinIncomplete: a server response that closed before it was
	// complete; a client call that got no response.
	SpanBinIncomplete = 0x02
	// SpanBinTLS: the request came over TLS (https).
	SpanBinTLS = 0x04
	// SpanBinRawIDs (version 3): the ids are their bytes, not hex. A worker
	// makes its ids as bytes and need never format them for a span.
	SpanBinRawIDs = 0x08

	// MaxSpansPerFrame bounds the records of one binary frame (the
	// frame's own bound, MaxFrame bytes, usually comes first).
	MaxSpansPerFrame = 4096

	// MaxSpanTarget bounds the bytes of the target and of the host
	// (MaxAttributeValue characters of up to three bytes).
	MaxSpanTarget = 3 * MaxAttributeValue
	maxSpanMethod = 64
	// maxHTTPStatus is the highest status code a span may carry, in the
	// binary form as in the JSON one (SpanHTTP).
	maxHTTPStatus = 999
)

// HTTPSpan is one record of a binary spans frame. Its strings point into
// the frame it was decoded from, which they keep alive, so decoding
// allocates nothing per span.
type HTTPSpan struct {
	Kind         byte
	Flags        byte
	Status       uint16
	Port         uint16
	StartMs      float64
	EndMs        float64
	TraceID      [16]byte
	SpanID       [8]byte
	ParentSpanID [8]byte // zero without SpanBinParent
	Method       string
	Target       string
	Host         string
	// MethodTarget is the method, a space and the target: a span's name is
	// a prefix of it.
	MethodTarget string
}

// HasParent reports whether the span has a parent.
func (s *HTTPSpan) HasParent() bool { return s.Flags&SpanBinParent != 0 }

// DecodeHTTPSpans decodes the records of a binary spans frame (the
// payload after SpansBinaryTag). It returns the valid spans, how many
// records were dropped (invalid, past MaxSpansPerFrame, or after one
// whose lengths leave the rest unreadable) and the first reason.
func DecodeHTTPSpans(p []byte) (spans []HTTPSpan, dropped int, firstErr error) {
	return DecodeHTTPSpansInto(nil, p)
}

// DecodeHTTPSpansInto is DecodeHTTPSpans into dst's memory, when it has
// room: a caller that decodes frame after frame reuses one slice.
func DecodeHTTPSpansInto(dst []HTTPSpan, p []byte) (spans []HTTPSpan, dropped int, firstErr error) {
	if len(p) < 2 {
		return dst[:0], 1, fmt.Errorf("%w: binary spans frame without a count", ErrInvalidSpan)
	}
	count := int(binary.LittleEndian.Uint16(p))
	p = p[2:]
	keep := min(count, MaxSpansPerFrame)
	if count > keep {
		dropped = count - keep
		firstErr = fmt.Errorf("%w: %d spans in one frame, limit %d", ErrInvalidSpan, count, MaxSpansPerFrame)
	}
	// A frame cannot hold more records than its bytes allow, whatever its
	// count says: room for those, and for the one that is found cut short.
	room := min(keep, len(p)/minSpanRecord+1)
	if cap(dst) >= room {
		spans = dst[:room]
	} else {
		spans = make([]HTTPSpan, room)
	}
	n := 0
	for i := 0; i < keep; i++ {
		rest, err := decodeHTTPSpan(p, &spans[n])
		if rest == nil {
			// The record's own lengths are wrong: nothing after it can be
			// found, so it and every later one are lost.
			dropped += keep - i
			if firstErr == nil {
				firstErr = fmt.Errorf("span %d: %w", i, err)
			}
			break
		}
		p = rest
		if err != nil {
			dropped++
			if firstErr == nil {
				firstErr = fmt.Errorf("span %d: %w", i, err)
			}
			continue
		}
		n++
	}
	if n < len(spans) {
		// Every record is decoded into spans[n], so only that entry can
		// hold what an invalid one left; the entries past it are as dst
		// had them. Clearing them all would cost a frame that claims
		// thousands of records and holds none as much as a full one.
		spans[n] = HTTPSpan{}
	}
	return spans[:n], dropped, firstErr
}

// minSpanRecord is the fewest bytes a record takes: raw ids, no parent, a
// method and target of one byte between them, no host.
const minSpanRecord = spanBinFixedRaw + 3 + 1 + 2 + 2

// The fixed part of a record, ids included: hex ids and raw ones.
const (
	spanBinFixedHex = 1 + 1 + 2 + 8 + 8 + 32 + 16
	spanBinFixedRaw = 1 + 1 + 2 + 8 + 8 + 16 + 8
)

// decodeHTTPSpan reads one record into s. It returns what follows the
// record, or nil when the record cannot be delimited; an error with a
// non-nil rest is a record that was read but is invalid.
func decodeHTTPSpan(p []byte, s *HTTPSpan) (rest []byte, err error) {
	short := func() ([]byte, error) {
		return nil, fmt.Errorf("%w: record cut short", ErrInvalidSpan)
	}
	if len(p) < spanBinFixedRaw {
		return short()
	}
	s.Kind, s.Flags = p[0], p[1]
	raw := s.Flags&SpanBinRawIDs != 0
	if !raw && len(p) < spanBinFixedHex {
		return short()
	}
	s.Status = binary.LittleEndian.Uint16(p[2:])
	s.StartMs = math.Float64frombits(binary.LittleEndian.Uint64(p[4:]))
	s.EndMs = math.Float64frombits(binary.LittleEndian.Uint64(p[12:]))
	// An id of n bytes takes n bytes raw, 2n in hex.
	id, w, fixed := hexID, 2, spanBinFixedHex
	if raw {
		id, w, fixed = rawID, 1, spanBinFixedRaw
	}
	okTrace := id(s.TraceID[:], p[20:20+16*w])
	okSpan := id(s.SpanID[:], p[20+16*w:fixed])
	p = p[fixed:]
	okParent := true
	if s.Flags&SpanBinParent != 0 {
		if len(p) < 8*w {
			return short()
		}
		okParent = id(s.ParentSpanID[:], p[:8*w])
		p = p[8*w:]
	}
	if len(p) < 3 {
		return short()
	}
	ml, tl := int(p[0]), int(binary.LittleEndian.Uint16(p[1:]))
	p = p[3:]
	if len(p) < ml+1+tl+2 {
		return short()
	}
	mt := p[:ml+1+tl]
	p = p[ml+1+tl:]
	hl := int(binary.LittleEndian.Uint16(p))
	p = p[2:]
	if len(p) < hl+2 {
		return short()
	}
	host := p[:hl]
	s.Port = binary.LittleEndian.Uint16(p[hl:])
	rest = p[hl+2:]

	bad := func(format string, args ...any) ([]byte, error) {
		return rest, fmt.Errorf("%w: %s", ErrInvalidSpan, fmt.Sprintf(format, args...))
	}
	switch {
	case s.Kind != SpanBinServer && s.Kind != SpanBinClient:
		return bad("kind %d is not server (1) or client (2)", s.Kind)
	case !okTrace:
		return bad("trace id is all zero or not 32 lower-case hex digits")
	case !okSpan:
		return bad("span id is all zero or not 16 lower-case hex digits")
	case !okParent:
		return bad("parent span id is all zero or not 16 lower-case hex digits")
	}
	for _, t := range []float64{s.StartMs, s.EndMs} {
		if math.IsNaN(t) || t <= 0 || t > maxEpochMs {
			return bad("time %v ms is not a Unix epoch time", t)
		}
	}
	if s.EndMs < s.StartMs {
		return bad("end %v is before start %v", s.EndMs, s.StartMs)
	}
	if s.Status > maxHTTPStatus {
		return bad("status %d is not 0 to %d", s.Status, maxHTTPStatus)
	}
	if ml == 0 || ml > maxSpanMethod || mt[ml] != ' ' {
		return bad("method of %d bytes, or no space after it", ml)
	}
	for _, c := range mt[:ml] {
		if c <= ' ' || c >= 0x7f {
			return bad("method is not an HTTP token")
		}
	}
	if tl > MaxSpanTarget || hl > MaxSpanTarget {
		return bad("target of %d bytes or host of %d bytes is over the limit", tl, hl)
	}
	s.MethodTarget = validText(mt)
	s.Method = s.MethodTarget[:ml]
	s.Target = s.MethodTarget[ml+1:]
	s.Host = validText(host)
	return rest, nil
}

// validText makes a string of b without copying it when it is valid
// UTF-8, and a copy with the invalid bytes replaced otherwise: OTLP
// strings must be valid UTF-8, and a collector rejects a whole export
// that holds one that is not.
func validText(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if utf8.Valid(b) {
		return unsafe.String(&b[0], len(b))
	}
	out := make([]rune, 0, len(b))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		out = append(out, r) // RuneError for an invalid byte
		b = b[size:]
	}
	return string(out)
}

// hexID decodes lower-case hex src into dst (len(src) == 2*len(dst)) and
// reports whether it was valid and not all zero.
func hexID(dst, src []byte) bool {
	var or, bad byte
	for i := range dst {
		hi, lo := hexVal[src[2*i]], hexVal[src[2*i+1]]
		bad |= hi | lo
		dst[i] = hi<<4 | lo&0x0f
		or |= dst[i]
	}
	return bad&0x80 == 0 && or != 0
}

// rawID copies src into dst (the same length) and reports whether it is
// not all zero.
func rawID(dst, src []byte) bool {
	var or byte
	for i := range dst {
		dst[i] = src[i]
		or |= src[i]
	}
	return or != 0
}

// hexVal maps a lower-case hex digit to its value and anything else to
// 0xff.
var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c - 'a' + 10)
	}
	return t
}()

// AppendHTTPSpans appends a binary spans frame holding spans, length
// prefix included, to buf: the form a worker sends (Method, Target, Host
// and the fixed fields are written; MethodTarget is not read). The ids
// are written as bytes for a span with SpanBinRawIDs, else in hex.
func AppendHTTPSpans(buf []byte, spans []HTTPSpan) []byte {
	start := len(buf)
	buf = append(buf, 0, 0, 0, 0, SpansBinaryTag)
	buf = binary.LittleEndian.AppendUint16(buf, uint16(len(spans)))
	for i := range spans {
		s := &spans[i]
		buf = append(buf, s.Kind, s.Flags)
		buf = binary.LittleEndian.AppendUint16(buf, s.Status)
		buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(s.StartMs))
		buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(s.EndMs))
		if s.Flags&SpanBinRawIDs != 0 {
			buf = append(append(buf, s.TraceID[:]...), s.SpanID[:]...)
			if s.Flags&SpanBinParent != 0 {
				buf = append(buf, s.ParentSpanID[:]...)
			}
		} else {
			buf = hex.AppendEncode(buf, s.TraceID[:])
			buf = hex.AppendEncode(buf, s.SpanID[:])
			if s.Flags&SpanBinParent != 0 {
				buf = hex.AppendEncode(buf, s.ParentSpanID[:])
			}
		}
		buf = append(buf, byte(len(s.Method)))
		buf = binary.LittleEndian.AppendUint16(buf, uint16(len(s.Target)))
		buf = append(append(append(buf, s.Method...), ' '), s.Target...)
		buf = binary.LittleEndian.AppendUint16(buf, uint16(len(s.Host)))
		buf = append(buf, s.Host...)
		buf = binary.LittleEndian.AppendUint16(buf, s.Port)
	}
	binary.BigEndian.PutUint32(buf[start:], uint32(len(buf)-start-4))
	return buf
}
