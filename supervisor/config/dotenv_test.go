package config

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestParseDotenv(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    map[string]string
		notes   []string // the lines skipped or taken as written
		wantErr string
	}{
		{name: "empty", text: "", want: map[string]string{}},
		{name: "plain", text: "A=1\nB = two words \n", want: map[string]string{"A": "1", "B": "two words"}},
		{name: "comments and blank lines", text: "# top\n\n  # indented\nA=1\n", want: map[string]string{"A": "1"}},
		{name: "export prefix", text: "export A=1\nexport\tB=2\nexporter=3\n", want: map[string]string{"A": "1", "B": "2", "exporter": "3"}},
		{name: "inline comment needs whitespace", text: "A=x # note\nB=#fff\nC=a#b\n", want: map[string]string{"A": "x", "B": "#fff", "C": "a#b"}},
		{name: "single quotes are literal", text: `A='x\ny # z'`, want: map[string]string{"A": `x\ny # z`}},
		{name: "double quotes expand escapes", text: `A="x\ny\t\"q\" \\ \z"`, want: map[string]string{"A": "x\ny\t\"q\" \\ \\z"}},
		{name: "back quotes", text: "A=`it's \"fine\"`", want: map[string]string{"A": `it's "fine"`}},
		{name: "comment after quoted value", text: `A="v" # c`, want: map[string]string{"A": "v"}},
		{name: "multi-line quoted value", text: "A=\"one\ntwo\"\nB=3", want: map[string]string{"A": "one\ntwo", "B": "3"}},
		{name: "empty value", text: "A=\nB=''\n", want: map[string]string{"A": "", "B": ""}},
		{name: "later wins", text: "A=1\nA=2\n", want: map[string]string{"A": "2"}},
		{name: "CRLF and BOM", text: "\ufeffA=1\r\nB=2\r\n", want: map[string]string{"A": "1", "B": "2"}},
		{name: "equals in value", text: "URL=postgres://u:p@h/db?x=1", want: map[string]string{"URL": "postgres://u:p@h/db?x=1"}},
		{name: "dotted and dashed names", text: "a.b-c=1", want: map[string]string{"a.b-c": "1"}},
		// What Node.js's util.parseEnv (22, 24) skips is skipped, and what
		// it takes as a name is one; each said.
		{name: "missing equals", text: "A=1\nNOPE\nO:colon\n[section]\nexport\nB=2\n", want: map[string]string{"A": "1", "B": "2"},
			notes: []string{`line 2: expected KEY=VALUE, got "NOPE"; the line is skipped`, `line 3: expected KEY=VALUE, got "O:colon"; the line is skipped`,
				`line 4: expected KEY=VALUE, got "[section]"; the line is skipped`, `line 5: expected KEY=VALUE, got "export"; the line is skipped`}},
		{name: "no name", text: "=x\n  = y\nA=1", want: map[string]string{"A": "1"},
			notes: []string{`line 1: no variable name before the "=" in "=x"; the line is skipped`, `line 2: no variable name before the "=" in "= y"; the line is skipped`}},
		{name: "odd names", text: "1A=1\nFOO BAR=2", want: map[string]string{"1A": "1", "FOO BAR": "2"},
			notes: []string{`line 1: "1A" is not a name a shell can use; set as written`, `line 2: "FOO BAR" is not a name a shell can use; set as written`}},
		{name: "unclosed quote", text: "A=1\nB=\"open\nstill open", wantErr: `line 2: the quoted value of B is never closed`},
		{name: "text after closing quote", text: `A="v" w`, wantErr: `line 1: unexpected "w" after the closing quote of A`},
		{name: "NUL byte", text: "A=1\r\nB=x\x00y\n", wantErr: `line 2: a NUL byte, which no environment variable can hold`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, notes, err := parseDotenv(tt.text)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error: got %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			var said []string
			for _, n := range notes {
				said = append(said, n.Error())
			}
			if !slices.Equal(said, tt.notes) {
				t.Errorf("notes:\n got %q\nwant %q", said, tt.notes)
			}
		})
	}
}

func TestReadDotenv(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.env")
	bad := filepath.Join(dir, "bad.env")
	if err := os.WriteFile(good, []byte("A=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("A=1\nB=\"open\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	skipped := filepath.Join(dir, "skipped.env")
	if err := os.WriteFile(skipped, []byte("A=1\n\nbroken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		path     string
		required bool
		want     map[string]string
		warnings []*Error
		wantErr  *Error
	}{
		{name: "present", path: good, want: map[string]string{"A": "1"}},
		{name: "optional and missing", path: filepath.Join(dir, "none.env")},
		{name: "optional under a file", path: filepath.Join(good, ".env")},
		{name: "optional directory", path: dir},
		{name: "required and missing", path: filepath.Join(dir, "none.env"), required: true,
			wantErr: &Error{Pointer: "/envfile", Message: "env file " + filepath.Join(dir, "none.env") + " does not exist"}},
		{name: "syntax error", path: bad,
			wantErr: &Error{File: bad, Line: 2, Message: `the quoted value of B is never closed`}},
		{name: "a line skipped", path: skipped, want: map[string]string{"A": "1"},
			warnings: []*Error{{File: skipped, Line: 3, Message: `expected KEY=VALUE, got "broken"; the line is skipped`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warnings, err := readDotenv(tt.path, tt.required, "/envfile")
			if tt.wantErr != nil {
				if err == nil {
					t.Fatal("no error")
				}
				if err.File != tt.wantErr.File || err.Pointer != tt.wantErr.Pointer || err.Line != tt.wantErr.Line || err.Message != tt.wantErr.Message {
					t.Errorf("got %+v, want %+v", *err, *tt.wantErr)
				}
				if !errors.Is(err, ErrInvalid) {
					t.Error("does not wrap ErrInvalid")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if len(warnings) != len(tt.warnings) {
				t.Fatalf("warnings %v, want %v", warnings, tt.warnings)
			}
			for i, w := range warnings {
				if want := tt.warnings[i]; w.File != want.File || w.Line != want.Line || w.Message != want.Message {
					t.Errorf("warning %+v, want %+v", *w, *want)
				}
			}
		})
	}
}
