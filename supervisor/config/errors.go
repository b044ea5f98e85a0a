package config

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is wrapped by every error that reports a mistake in the
// configuration or in a file it names, so callers can tell "fix your config"
// apart from I/O trouble with errors.Is.
var ErrInvalid = errors.New("invalid configuration")

// Error is one problem in a configuration file or a dotenv file.
type Error struct {
	File    string // absolute path of the file the problem is in
	Pointer string // JSON pointer (RFC 6901) to the offending value; "" when the problem is not tied to one value
	Line    int    // 1-based line, for syntax errors; 0 otherwise
	Column  int    // 1-based column in bytes, for syntax errors; 0 otherwise
	Message string
	Err     error // underlying cause, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
			if e.Column > 0 {
				fmt.Fprintf(&b, ":%d", e.Column)
			}
		}
		b.WriteString(": ")
	}
	if e.Pointer != "" {
		b.WriteString(printablePointer(e.Pointer))
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// printablePointer is ptr with its control characters escaped as JSON
// escapes them (\u0000): a key with a NUL byte or an escape sequence in
// it must not make the message binary, nor drive the terminal.
func printablePointer(ptr string) string {
	if !strings.ContainsFunc(ptr, isControl) {
		return ptr
	}
	var b strings.Builder
	for _, r := range ptr {
		if isControl(r) {
			fmt.Fprintf(&b, `\u%04x`, r)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 }

// Unwrap exposes both ErrInvalid and the cause, so errors.Is works for
// either (for instance fs.ErrNotExist for a missing envfile).
func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalid, e.Err}
	}
	return []error{ErrInvalid}
}

// ErrorList is returned when a configuration has more than one problem; the
// problems are in document order.
type ErrorList []*Error

func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// asError gives callers the single *Error itself when there is only one,
// which is what most configurations with a typo produce.
func (l ErrorList) asError() error {
	switch len(l) {
	case 0:
		return nil
	case 1:
		return l[0]
	default:
		return l
	}
}

// issue is a problem found while the file name is not at hand; the loader
// turns issues into Errors.
type issue struct {
	ptr string
	msg string
	err error
	// rejects is set by schema validation: the pointer of the value the
	// issue rejects (the value itself, an unknown key, or an object that
	// lacks a required key). The loader sets those values aside to run the
	// remaining checks, and drops their echoes.
	rejects string
	// unknownKey marks the schema's "unknown key" problems.
	unknownKey bool
}

func issuef(ptr, format string, args ...any) issue {
	return issue{ptr: ptr, msg: fmt.Sprintf(format, args...)}
}
