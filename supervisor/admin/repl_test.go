package admin

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

// chunkWriter records each write.
type chunkWriter struct{ writes []string }

func (w *chunkWriter) Write(p []byte) (int, error) {
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

// TestCopyTextKeepsCharactersWhole: whatever the reads cut, every write
// (a WebSocket text message) is whole UTF-8, and together they are the
// input; bytes that are no UTF-8 become U+FFFD.
func TestCopyTextKeepsCharactersWhole(t *testing.T) {
	in := "a é € 😀 " + strings.Repeat("é€😀x", 50)
	for _, r := range []struct {
		name string
		r    io.Reader
	}{
		{"one byte a read", iotest.OneByteReader(strings.NewReader(in))},
		{"half a buffer a read", iotest.HalfReader(strings.NewReader(in))},
		{"all at once", strings.NewReader(in)},
	} {
		var w chunkWriter
		n, err := copyText(&w, r.r)
		if err != nil || n != int64(len(in)) {
			t.Errorf("%s: copied %d, %v; want %d", r.name, n, err, len(in))
		}
		for _, s := range w.writes {
			if !utf8.ValidString(s) || s == "" {
				t.Errorf("%s: write %q", r.name, s)
			}
		}
		if got := strings.Join(w.writes, ""); got != in {
			t.Errorf("%s: got %q", r.name, got)
		}
	}
	// Not UTF-8, and a sequence the input ends in the middle of.
	var w chunkWriter
	if _, err := copyText(&w, bytes.NewReader([]byte("ok \xff\xfe then \xe2\x82"))); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(w.writes, ""); got != "ok \uFFFD then \uFFFD" {
		t.Errorf("got %q", got)
	}
}

func TestIncompleteTail(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
	}{
		{"", 0}, {"abc", 0}, {"é", 0}, {"\xc3", 1}, {"a\xe2\x82", 2}, {"€", 0},
		{"\xf0\x9f\x98", 3}, {"😀", 0}, {"\x82", 0}, {"a\xf0", 1},
	} {
		if got := incompleteTail([]byte(c.in)); got != c.want {
			t.Errorf("incompleteTail(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}
