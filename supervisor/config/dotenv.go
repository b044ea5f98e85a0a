package config

import (
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"syscall"
)

// dotenvKey accepts the names dotenv accepts: besides the POSIX ones, dots
// and dashes occur in real .env files.
var dotenvKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

// dotenvError is a problem at a line of a dotenv file.
type dotenvError struct {
	line int
	msg  string
}

func (e *dotenvError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// parseDotenv reads the dotenv format Watt reads (through Node's
// util.parseEnv and dotenv): KEY=VALUE lines, an optional "export " prefix,
// # comments, values in single, double or back quotes (which may span
// lines), and \n, \r, \t, \" and \\ escapes inside double quotes only. A
// later assignment of a key wins. A line that is not KEY=VALUE, or has no
// name before its "=", is skipped as Node.js (22 and later) skips it, and
// a name no shell could use ("FOO BAR", "1ABC") is set as written, as
// Node.js sets it; each is a note of the line, which wattd shows as a
// warning, since a line silently ignored is a variable mysteriously unset
// at run time. A value whose quote never closes, text after a closing
// quote and a NUL byte are errors.
func parseDotenv(text string) (map[string]string, []*dotenvError, error) {
	text = strings.TrimPrefix(text, "\ufeff")
	text = strings.ReplaceAll(text, "\r\n", "\n")
	// A NUL byte fits in no process environment: a worker started with
	// it would not start at all.
	if i := strings.IndexByte(text, 0); i >= 0 {
		return nil, nil, &dotenvError{1 + strings.Count(text[:i], "\n"), "a NUL byte, which no environment variable can hold"}
	}
	vars := map[string]string{}
	var notes []*dotenvError
	line := 1
	for len(text) > 0 {
		raw, rest, _ := strings.Cut(text, "\n")
		text = rest
		start := line
		line++
		stmt := strings.TrimSpace(raw)
		if stmt == "" || strings.HasPrefix(stmt, "#") {
			continue
		}
		if rest, ok := strings.CutPrefix(stmt, "export"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
			stmt = strings.TrimSpace(rest)
		}
		key, value, ok := strings.Cut(stmt, "=")
		key = strings.TrimSpace(key)
		if !ok {
			notes = append(notes, &dotenvError{start, fmt.Sprintf("expected KEY=VALUE, got %q; the line is skipped", stmt)})
			continue
		}
		if key == "" {
			notes = append(notes, &dotenvError{start, fmt.Sprintf("no variable name before the \"=\" in %q; the line is skipped", stmt)})
			continue
		}
		if !dotenvKey.MatchString(key) {
			notes = append(notes, &dotenvError{start, fmt.Sprintf("%q is not a name a shell can use; set as written", key)})
		}
		value = strings.TrimLeft(value, " \t")
		if value == "" || !strings.ContainsRune(`"'`+"`", rune(value[0])) {
			vars[key] = unquotedValue(value)
			continue
		}
		quote := value[0]
		body := value[1:]
		// A quoted value may continue on the following lines.
		for {
			end := closingQuote(body, quote)
			if end >= 0 {
				after := strings.TrimSpace(body[end+1:])
				if after != "" && !strings.HasPrefix(after, "#") {
					return nil, nil, &dotenvError{start, fmt.Sprintf("unexpected %q after the closing quote of %s", after, key)}
				}
				body = body[:end]
				break
			}
			if text == "" {
				return nil, nil, &dotenvError{start, fmt.Sprintf("the quoted value of %s is never closed", key)}
			}
			var next string
			next, text, _ = strings.Cut(text, "\n")
			line++
			body += "\n" + next
		}
		if quote == '"' {
			body = unescapeDouble(body)
		}
		vars[key] = body
	}
	return vars, notes, nil
}

// DotenvVars reads a dotenv text as the configuration's loader does
// (parseDotenv), for commands that edit a project's .env: the variables
// it sets.
func DotenvVars(text string) (map[string]string, error) {
	vars, _, err := parseDotenv(text)
	return vars, err
}

// unquotedValue drops a trailing comment, which dotenv recognises only
// after whitespace so that values such as colour codes ("#fff") survive.
func unquotedValue(v string) string {
	for i := 1; i < len(v); i++ {
		if v[i] == '#' && (v[i-1] == ' ' || v[i-1] == '\t') {
			v = v[:i]
			break
		}
	}
	return strings.TrimSpace(v)
}

// closingQuote finds the quote ending a value; only double-quoted values
// have escapes.
func closingQuote(s string, quote byte) int {
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && quote == '"':
			i++
		case s[i] == quote:
			return i
		}
	}
	return -1
}

func unescapeDouble(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case '"', '\\':
			b.WriteByte(s[i])
		default:
			// Unknown escapes stay as written, like dotenv leaves them.
			b.WriteByte('\\')
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// readDotenv loads a dotenv file. A missing optional file is not an error;
// a missing required one (an explicit envfile) is reported with ptr, the
// place in watt.json that names it. The warnings are the lines skipped or
// taken as written (parseDotenv), at their line of the file.
func readDotenv(path string, required bool, ptr string) (map[string]string, []*Error, *Error) {
	data, err := readRegular(path)
	if err != nil {
		switch {
		case !required && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ENOTDIR)):
			// Nothing readable where an optional .env would be is the same
			// as no .env.
			return nil, nil, nil
		case errors.Is(err, fs.ErrNotExist):
			return nil, nil, &Error{Pointer: ptr, Message: fmt.Sprintf("env file %s does not exist", path), Err: err}
		}
		if ptr == "" {
			return nil, nil, &Error{File: path, Message: fmt.Sprintf("cannot read env file: %v", unwrapPathError(err)), Err: err}
		}
		return nil, nil, &Error{Pointer: ptr, Message: fmt.Sprintf("cannot read env file %s: %v", path, unwrapPathError(err)), Err: err}
	}
	vars, notes, err := parseDotenv(string(data))
	if err != nil {
		var de *dotenvError
		if errors.As(err, &de) {
			return nil, nil, &Error{File: path, Line: de.line, Message: de.msg}
		}
		return nil, nil, &Error{File: path, Message: err.Error(), Err: err}
	}
	var warnings []*Error
	for _, n := range notes {
		warnings = append(warnings, &Error{File: path, Line: n.line, Message: n.msg})
	}
	return vars, warnings, nil
}

// unwrapPathError keeps messages short: the path is already in them.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
