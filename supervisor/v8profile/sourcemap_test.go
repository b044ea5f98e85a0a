package v8profile

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// encodeVLQ is decodeVLQ's inverse, to write maps for the tests.
func encodeVLQ(nums ...int) string {
	var b strings.Builder
	for _, n := range nums {
		v := n << 1
		if n < 0 {
			v = (-n << 1) | 1
		}
		for {
			d := v & 31
			v >>= 5
			if v > 0 {
				d |= 32
			}
			b.WriteByte(vlqChars[d])
			if v == 0 {
				break
			}
		}
	}
	return b.String()
}

func TestDecodeVLQ(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []int
	}{
		{"A", []int{0}}, {"C", []int{1}}, {"D", []int{-1}}, {"gB", []int{16}}, {"AAAA", []int{0, 0, 0, 0}},
		{"SAAS", []int{9, 0, 0, 9}}, {encodeVLQ(123456, -789, 0, 31, 32), []int{123456, -789, 0, 31, 32}},
	} {
		got, err := decodeVLQ(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("decodeVLQ(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"g", "!", "gggggggggggggB"} {
		if _, err := decodeVLQ(bad); err == nil {
			t.Errorf("decodeVLQ(%q): no error", bad)
		}
	}
}

// TestSourceMaps: frames of a compiled script land where its map says,
// by a map file beside it or inline; what a map cannot say stays as V8
// gave it.
func TestSourceMaps(t *testing.T) {
	dir := t.TempDir()
	dist, src := filepath.Join(dir, "dist"), filepath.Join(dir, "src")
	for _, d := range []string{dist, src, filepath.Join(dir, "node_modules", "lib")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Generated line 0: col 0 -> app.ts 0:0 "main"; col 9 -> app.ts 1:2.
	// Line 1: nothing. Line 2: col 4 -> util.ts 6:4 "helper", col 20 ->
	// util.ts 7:0, no name.
	mappings := encodeVLQ(0, 0, 0, 0, 0) + "," + encodeVLQ(9, 0, 1, 2) + ";;" +
		encodeVLQ(4, 1, 5, 2, 1) + "," + encodeVLQ(16, 0, 1, -4)
	doc, _ := json.Marshal(map[string]any{"version": 3, "sourceRoot": "../src", "sources": []string{"app.ts", "util.ts"},
		"names": []string{"main", "helper"}, "mappings": mappings})
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dist, "app.js.map"), string(doc))
	code := "function main(){}\n\nvar x = function helper(){}\n"
	write(filepath.Join(dist, "app.js"), code+"//# sourceMappingURL=app.js.map\n")
	write(filepath.Join(dist, "inline.js"), code+"//# sourceMappingURL=data:application/json;charset=utf-8;base64,"+base64.StdEncoding.EncodeToString(doc)+"\n")
	write(filepath.Join(dist, "plain.js"), code)
	write(filepath.Join(dist, "broken.js"), code+"//# sourceMappingURL=broken.js.map\n")
	write(filepath.Join(dist, "broken.js.map"), `{"version":3,"sources":["a.ts"],"names":[],"mappings":"AAAA,Z!"}`)
	write(filepath.Join(dir, "node_modules", "lib", "app.js"), code+"//# sourceMappingURL=../../dist/app.js.map\n")

	appTS, utilTS := filepath.Join(src, "app.ts"), filepath.Join(src, "util.ts")
	sm := NewSourceMaps()
	for _, c := range []struct {
		in, want CallFrame
	}{
		{CallFrame{"main", filepath.Join(dist, "app.js"), 0, 0}, CallFrame{"main", appTS, 0, 0}},
		{CallFrame{"", filepath.Join(dist, "app.js"), 0, 12}, CallFrame{"", appTS, 1, 2}},
		{CallFrame{"x", filepath.Join(dist, "app.js"), 2, 8}, CallFrame{"helper", utilTS, 6, 4}},
		{CallFrame{"x", filepath.Join(dist, "app.js"), 2, 25}, CallFrame{"x", utilTS, 7, 0}},
		{CallFrame{"x", "file://" + filepath.Join(dist, "app.js"), 2, 8}, CallFrame{"helper", utilTS, 6, 4}},
		{CallFrame{"main", filepath.Join(dist, "inline.js"), 0, 3}, CallFrame{"main", appTS, 0, 0}},
		// Before the line's first segment, a line without any, past the
		// map's lines: as V8 gave them.
		{CallFrame{"x", filepath.Join(dist, "app.js"), 2, 1}, CallFrame{"x", filepath.Join(dist, "app.js"), 2, 1}},
		{CallFrame{"x", filepath.Join(dist, "app.js"), 1, 0}, CallFrame{"x", filepath.Join(dist, "app.js"), 1, 0}},
		{CallFrame{"x", filepath.Join(dist, "app.js"), 9, 0}, CallFrame{"x", filepath.Join(dist, "app.js"), 9, 0}},
		// No map, a broken one, node_modules, internals, unknown positions.
		{CallFrame{"main", filepath.Join(dist, "plain.js"), 0, 0}, CallFrame{"main", filepath.Join(dist, "plain.js"), 0, 0}},
		{CallFrame{"main", filepath.Join(dist, "broken.js"), 0, 0}, CallFrame{"main", filepath.Join(dist, "broken.js"), 0, 0}},
		{CallFrame{"main", filepath.Join(dir, "node_modules", "lib", "app.js"), 0, 0}, CallFrame{"main", filepath.Join(dir, "node_modules", "lib", "app.js"), 0, 0}},
		{CallFrame{"emit", "node:events", 10, 2}, CallFrame{"emit", "node:events", 10, 2}},
		{CallFrame{"(root)", "", -1, -1}, CallFrame{"(root)", "", -1, -1}},
	} {
		if got := sm.Map(c.in); got != c.want {
			t.Errorf("Map(%+v) = %+v, want %+v", c.in, got, c.want)
		}
	}
	if sm.Found != 2 {
		t.Errorf("%d maps read, want 2 (app.js's and inline.js's)", sm.Found)
	}
	// A script that names a FIFO as its map, and a FIFO as a script:
	// nothing waits for a writer.
	if err := syscall.Mkfifo(filepath.Join(dist, "fifo.js.map"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dist, "fifo.js"), 0o600); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(dist, "names-fifo.js"), code+"//# sourceMappingURL=fifo.js.map\n")
	for _, name := range []string{"names-fifo.js", "fifo.js"} {
		cf := CallFrame{"main", filepath.Join(dist, name), 0, 0}
		if got := sm.Map(cf); got != cf {
			t.Errorf("Map(%+v) = %+v", cf, got)
		}
	}
	var none *SourceMaps
	if cf := (CallFrame{"a", "/x.js", 0, 0}); none.Map(cf) != cf {
		t.Error("a nil SourceMaps changed a frame")
	}
}
