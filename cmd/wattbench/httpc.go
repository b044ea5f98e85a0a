package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// The load generator speaks just enough HTTP/1.1 to drive a keep-alive GET
// loop: write a fixed request, read one response, discard its body. It skips
// net/http on purpose: on a 2-core machine the client competes with the
// server for CPU, and net/http's per-request allocations and goroutines
// would show up as a slower server.

// response is what the load generator needs to know about a response.
type response struct {
	status  int
	bodyLen int64
	// close is set when the connection cannot carry another request: the
	// server said "Connection: close", spoke HTTP/1.0 without keep-alive, or
	// delimited the body by closing.
	close bool
}

// errProtocol marks responses the parser refuses; callers count them as
// failed requests and drop the connection, since its framing is lost.
var errProtocol = errors.New("malformed HTTP response")

// Bounds that keep a broken or hostile peer from holding the parser in a
// loop; the fixture sends a handful of headers and one body.
const (
	maxHeaders      = 100
	maxInterim      = 8
	maxChunks       = 1 << 20
	maxBodyLen      = 1 << 40
	readerBufferLen = 16 << 10 // also the longest line accepted
)

// readResponse reads one complete response (interim 1xx responses are
// skipped) from br. A clean io.EOF before the first byte is returned as
// io.EOF, an EOF later as io.ErrUnexpectedEOF, so that callers can tell a
// connection closed while idle from one cut mid-response.
func readResponse(br *bufio.Reader) (response, error) {
	for i := 0; i < maxInterim; i++ {
		r, err := readOne(br, i == 0)
		if err != nil {
			return r, err
		}
		// 101 switches protocols: nothing more to parse as HTTP, report it.
		if r.status >= 100 && r.status < 200 && r.status != 101 {
			continue
		}
		return r, nil
	}
	return response{}, errProtocol
}

func readOne(br *bufio.Reader, first bool) (response, error) {
	var r response
	line, err := readLine(br)
	if err != nil {
		if err == io.EOF && (!first || len(line) > 0) {
			err = io.ErrUnexpectedEOF
		}
		return r, err
	}
	// "HTTP/1.x NNN" with an optional reason phrase after it.
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' ||
		(len(line) > 12 && line[12] != ' ') {
		return r, errProtocol
	}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return r, errProtocol
		}
		r.status = r.status*10 + int(c-'0')
	}
	http10 := line[7] == '0'
	keepAlive := false

	contentLength := int64(-1)
	chunked := false
	for n := 0; ; n++ {
		if n > maxHeaders {
			return r, errProtocol
		}
		line, err = readLine(br)
		if err != nil {
			return r, unexpected(err)
		}
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return r, errProtocol
		}
		name := line[:colon]
		value := bytes.TrimSpace(line[colon+1:])
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			v, ok := parseDecimal(value)
			if !ok || (contentLength >= 0 && v != contentLength) {
				return r, errProtocol
			}
			contentLength = v
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			// Only the last coding decides the framing.
			last := value
			if i := bytes.LastIndexByte(value, ','); i >= 0 {
				last = bytes.TrimSpace(value[i+1:])
			}
			chunked = bytes.EqualFold(last, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok = bytes.TrimSpace(tok)
				switch {
				case bytes.EqualFold(tok, []byte("close")):
					r.close = true
				case bytes.EqualFold(tok, []byte("keep-alive")):
					keepAlive = true
				}
			}
		}
	}
	if http10 && !keepAlive {
		r.close = true
	}

	// A response to GET has no body only for these statuses.
	if r.status < 200 || r.status == 204 || r.status == 304 {
		return r, nil
	}
	switch {
	case chunked:
		// Transfer-Encoding wins over Content-Length (RFC 9112, 6.3).
		r.bodyLen, err = discardChunked(br)
	case contentLength >= 0:
		r.bodyLen = contentLength
		err = discard(br, contentLength)
	default:
		// Body runs to the end of the connection.
		r.close = true
		var n int64
		n, err = io.Copy(io.Discard, br)
		r.bodyLen = n
	}
	return r, err
}

// readLine returns one line without its CR LF. The slice aliases the reader's
// buffer and is valid only until the next read.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, errProtocol
	}
	if err != nil {
		return line, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

func discard(br *bufio.Reader, n int64) error {
	for n > 0 {
		step := int(min(n, 1<<30))
		got, err := br.Discard(step)
		n -= int64(got)
		if err != nil {
			return unexpected(err)
		}
	}
	return nil
}

func discardChunked(br *bufio.Reader) (int64, error) {
	var total int64
	for range maxChunks {
		line, err := readLine(br)
		if err != nil {
			return total, unexpected(err)
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i] // chunk extensions carry nothing we need
		}
		size, ok := parseHex(bytes.TrimSpace(line))
		if !ok {
			return total, errProtocol
		}
		if size == 0 {
			// Trailer section, ended by an empty line.
			for n := 0; ; n++ {
				if n > maxHeaders {
					return total, errProtocol
				}
				line, err = readLine(br)
				if err != nil {
					return total, unexpected(err)
				}
				if len(line) == 0 {
					return total, nil
				}
			}
		}
		if err := discard(br, size); err != nil {
			return total, err
		}
		total += size
		if total > maxBodyLen {
			return total, errProtocol
		}
		line, err = readLine(br)
		if err != nil {
			return total, unexpected(err)
		}
		if len(line) != 0 {
			return total, errProtocol
		}
	}
	return total, errProtocol
}

func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 13 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, v <= maxBodyLen
}

func parseHex(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | int64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | int64(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | int64(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// unexpected turns an EOF inside a response into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
