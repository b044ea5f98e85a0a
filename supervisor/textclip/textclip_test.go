package textclip

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClip(t *testing.T) {
	cases := []struct {
		s    string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"0123456789ab", 10, "0123456…"},
		{"ééééé", 6, "é…"}, // 2 bytes each: 3 bytes of room hold one
		{"aébc", 4, "a…"},
		{"日本語テキスト", 9, "日本…"},
		{"abc", 2, "…"},
	}
	for _, c := range cases {
		got := Clip(c.s, c.max)
		if got != c.want {
			t.Errorf("Clip(%q, %d) = %q, want %q", c.s, c.max, got, c.want)
		}
		if !utf8.ValidString(got) || len(got) > max(c.max, len(Mark)) {
			t.Errorf("Clip(%q, %d) = %q: invalid UTF-8 or too long", c.s, c.max, got)
		}
	}
	long := strings.Repeat("ü", 1000)
	for n := 3; n < 40; n++ {
		if got := Clip(long, n); !utf8.ValidString(got) || len(got) > n || !strings.HasSuffix(got, Mark) {
			t.Errorf("Clip(ü×1000, %d) = %q", n, got)
		}
	}
}
