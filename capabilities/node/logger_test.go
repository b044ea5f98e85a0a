package node

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestLoggerMatchesPino runs the same calls through pino (from the
// globals fixture's node_modules, installed by `make deps`) and through
// the preload's logger, and requires the same lines: the call shapes,
// printf placeholders, error serialization, child bindings, levels and
// their API answers.
func TestLoggerMatchesPino(t *testing.T) {
	nodeOrSkip(t)
	pino, err := filepath.Abs(filepath.Join("..", "..", "testdata", "apps", "globals", "node_modules", "pino"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pino); err != nil {
		t.Skipf("pino is not installed (make deps): %v", err)
	}
	logger, _ := filepath.Abs(filepath.Join("preload", "logger.cjs"))
	bin, _ := Binary()
	out, err := exec.Command(bin, filepath.Join("testdata", "loggerparity.cjs"), pino, logger).Output()
	if err != nil {
		t.Fatalf("parity script: %v", err)
	}
	var got struct{ Theirs, Ours []string }
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("parity output %q: %v", out, err)
	}
	if len(got.Theirs) < 20 || len(got.Theirs) != len(got.Ours) {
		t.Fatalf("%d pino lines, %d of ours:\n%q\n%q", len(got.Theirs), len(got.Ours), got.Theirs, got.Ours)
	}
	for i := range got.Theirs {
		if got.Theirs[i] != got.Ours[i] {
			t.Errorf("line %d:\npino %s\nours %s", i, got.Theirs[i], got.Ours[i])
		}
	}
}

// TestLoggerRedactMatchesPino: with Watt's logger.redact, the preload's
// logger masks what pino masks, for every case wattd's own redaction is
// tested with (supervisor/logs/testdata/redact-cases.json), bindings of
// a child included.
func TestLoggerRedactMatchesPino(t *testing.T) {
	nodeOrSkip(t)
	pino, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "apps", "globals", "node_modules", "pino"))
	if _, err := os.Stat(pino); err != nil {
		t.Skipf("pino is not installed (make deps): %v", err)
	}
	cases, _ := filepath.Abs(filepath.Join("..", "..", "supervisor", "logs", "testdata", "redact-cases.json"))
	script := filepath.Join("..", "..", "supervisor", "logs", "testdata", "pinoredact.cjs")
	logger, _ := filepath.Abs(filepath.Join("preload", "logger.cjs"))
	bin, _ := Binary()
	out, err := exec.Command(bin, script, pino, cases, logger).Output()
	if err != nil {
		t.Fatalf("redact parity script: %v", err)
	}
	var got struct{ Pino, Ours, PinoChild, OursChild []json.RawMessage }
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("parity output %q: %v", out, err)
	}
	if len(got.Pino) < 10 || len(got.Pino) != len(got.Ours) {
		t.Fatalf("%d pino lines, %d of ours", len(got.Pino), len(got.Ours))
	}
	for i := range got.Pino {
		if string(got.Pino[i]) != string(got.Ours[i]) {
			t.Errorf("case %d:\npino %s\nours %s", i, got.Pino[i], got.Ours[i])
		}
		if string(got.PinoChild[i]) != string(got.OursChild[i]) {
			t.Errorf("case %d as bindings:\npino %s\nours %s", i, got.PinoChild[i], got.OursChild[i])
		}
	}
}
