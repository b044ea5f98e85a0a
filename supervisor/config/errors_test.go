package config

import (
	"errors"
	"io/fs"
	"testing"
)

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{File: "/p/watt.json", Pointer: "/server/port", Message: "bad"}, "/p/watt.json: /server/port: bad"},
		{Error{File: "/p/watt.json", Message: "no applications"}, "/p/watt.json: no applications"},
		{Error{File: "/p/watt.json", Line: 3, Column: 7, Message: "syntax"}, "/p/watt.json:3:7: syntax"},
		{Error{File: "/p/.env", Line: 2, Message: "bad line"}, "/p/.env:2: bad line"},
		// Control characters of a key are escaped, as JSON writes them.
		{Error{File: "/p/watt.json", Line: 1, Pointer: "/applications/0/env/C\x00\x1b[2J\u0085", Message: `invalid name "C\u0000"`},
			`/p/watt.json:1: /applications/0/env/C\u0000\u001b[2J\u0085: invalid name "C\u0000"`},
		{Error{Pointer: "/env/é~1x", Message: "m"}, "/env/é~1x: m"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestErrorWrapping(t *testing.T) {
	cause := &fs.PathError{Op: "open", Path: "x", Err: fs.ErrNotExist}
	one := &Error{File: "f", Message: "m", Err: cause}
	two := &Error{File: "f", Message: "n"}
	tests := []struct {
		name   string
		err    error
		target error
		want   bool
	}{
		{"error is invalid", one, ErrInvalid, true},
		{"error keeps its cause", one, fs.ErrNotExist, true},
		{"error without cause", two, fs.ErrNotExist, false},
		{"list is invalid", ErrorList{two, one}, ErrInvalid, true},
		{"list reaches causes", ErrorList{two, one}, fs.ErrNotExist, true},
	}
	for _, tt := range tests {
		if got := errors.Is(tt.err, tt.target); got != tt.want {
			t.Errorf("%s: errors.Is = %v, want %v", tt.name, got, tt.want)
		}
	}
	var e *Error
	if !errors.As(ErrorList{two, one}, &e) || e != two {
		t.Error("errors.As on a list should find its first *Error")
	}
}

func TestErrorListAsError(t *testing.T) {
	a, b := &Error{File: "f", Message: "a"}, &Error{File: "f", Message: "b"}
	if err := (ErrorList{}).asError(); err != nil {
		t.Errorf("empty list: %v", err)
	}
	if err := (ErrorList{a}).asError(); err != a {
		t.Errorf("one problem should be returned as itself, got %T", err)
	}
	if err := (ErrorList{a, b}).asError(); err.Error() != "f: a\nf: b" {
		t.Errorf("got %q", err)
	}
}
