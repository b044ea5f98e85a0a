package node

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

func TestFastifyWithTheRuntimeLogger(t *testing.T) {
	onEveryNode(t, testFastifyWithTheRuntimeLogger)
}

// testFastifyWithTheRuntimeLogger: Fastify given globalThis.platformatic.logger
// as its loggerInstance (Watt's migration guide) logs as it does with pino:
// its serializers shape req and res, its reqId is the one reqId of each
// line, and the request's trace ids are added.
func testFastifyWithTheRuntimeLogger(t *testing.T) {
	w, _ := tracedApp(t, "fastifylog", tracedInfo("fastifylog"))
	if resp, body := do(t, "http://"+w.tcpAddr+"/", map[string]string{"traceparent": "00-" + callerTrace + "-" + callerSpan + "-01"}); resp.StatusCode != 200 || body != `{"ok":true}` {
		t.Fatalf("GET /: %d %q", resp.StatusCode, body)
	}
	in, done := w.logLines("incoming request", 1)[0], w.logLines("request completed", 1)[0]
	for _, l := range []map[string]any{in, done} {
		raw, _ := l["_line"].(string)
		if strings.Count(raw, `"reqId":`) != 1 || l["reqId"] != "req-1" || l["traceId"] != callerTrace || len(raw) > 1000 {
			t.Errorf("line %s: want Fastify's reqId once, the trace id, and serialized req/res", raw)
		}
	}
	req, _ := in["req"].(map[string]any)
	res, _ := done["res"].(map[string]any)
	if req["method"] != "GET" || req["url"] != "/" || req["raw"] != nil || res["statusCode"] != float64(200) || len(res) != 1 {
		t.Errorf("req %v, res %v: want Fastify's serializers applied", req, res)
	}
}
