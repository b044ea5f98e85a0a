package logs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// benchLines are structured worker lines as Node apps print them: a
// plain pino line, pino-http's request line, and the line of a logger
// created with a name, whose name wattd renames.
var benchLines = []struct{ name, line string }{
	{"plain", `{"level":30,"time":1700000000000,"pid":4242,"hostname":"h","reqId":"r-1","msg":"hello"}`},
	{"request", `{"level":30,"time":1700000000000,"pid":4242,"hostname":"h","reqId":"req-1","res":{"statusCode":200},"responseTime":1.2345,"msg":"request completed"}`},
	{"named", `{"level":30,"time":1700000000000,"pid":4242,"hostname":"h","name":"api","count":3,"msg":"hi"}`},
}

// BenchmarkParseRecord is the decoding of one structured worker line.
func BenchmarkParseRecord(b *testing.B) {
	for _, c := range benchLines {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := parseRecord(c.line); !ok {
					b.Fatal("not a record")
				}
			}
		})
	}
}

// BenchmarkRecordEntry is one structured worker line decoded and written
// in pino's format with redaction on, as the Sink's writer does it.
func BenchmarkRecordEntry(b *testing.B) {
	r, _ := NewRedactor([]string{"req.headers.authorization", "secret"}, DefaultCensor)
	core := redactCore{Core: newLineCore(zapcore.InfoLevel, zapcore.AddSync(discard{}), nil, nil), r: r}
	log := zap.New(core).Named("app").With(zap.String("app", "web"), zap.Int("worker", 1), zap.Int("pid", 4242))
	for _, c := range benchLines {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rec, _ := parseRecord(c.line)
				ent := zapcore.Entry{Level: rec.level, Time: time.Now(), LoggerName: log.Name(), Message: rec.msg}
				if ce := log.Core().Check(ent, nil); ce != nil {
					ce.Write(rec.fields...)
				}
			}
		})
	}
}

// relayJSON runs lines through a Sink into wattd's JSON output with r and
// returns the output's lines.
func relayJSON(t *testing.T, r *Redactor, lines ...string) []string {
	t.Helper()
	var buf bytes.Buffer
	logger, _, err := newLogger(Setup{Level: "info", Redact: r}, zapcore.AddSync(&buf), false, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	s := NewSink(logger.Named("app").With(zap.String("app", "api"), zap.Int("worker", 0), zap.Int("pid", 4242)), Options{})
	s.Follow(strings.NewReader(strings.Join(lines, "\n")+"\n"), "stdout")
	within(t, 5*time.Second, "Close", s.Close)
	return strings.Split(strings.TrimSpace(buf.String()), "\n")
}

// strictMembers decodes the top level of a JSON object line as a strict
// consumer would: a key twice fails the test.
func strictMembers(t *testing.T, line string) map[string]json.RawMessage {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %q", line)
	}
	m := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		k := tok.(string)
		if _, dup := m[k]; dup {
			t.Errorf("key %q twice in %s", k, line)
		}
		m[k] = v
	}
	return m
}

// wantMembers checks members of a line by their JSON text.
func wantMembers(t *testing.T, line string, want map[string]string) {
	t.Helper()
	got := strictMembers(t, line)
	for k, v := range want {
		g, ok := got[k]
		switch {
		case v == "" && ok:
			t.Errorf("%s present in %s", k, line)
		case v != "" && string(g) != v:
			t.Errorf("%s = %s, want %s, in %s", k, g, v, line)
		}
	}
}

// TestRedactReachesRenamedMembers: a worker member renamed away from one
// of wattd's keys is masked by the paths written for the app's record
// (name, app.key), and by those written for the key it is logged under
// (worker.name, ["worker.app"].key); wattd's own name and app stay.
func TestRedactReachesRenamedMembers(t *testing.T) {
	line := `{"level":30,"msg":"clash redact","name":"NAMESECRET","app":{"key":"APPKEY","other":"keep"},"logger":{"token":"T"},"caller":"C","stream":[1,{"s":"S"}],"pid":99,"other":"keep"}`
	for _, paths := range [][]string{
		{"name", "app.key", "logger.token", "caller", "stream[1].s"},
		{"worker.name", "worker.app.key", "worker.logger.token", "worker.caller", "worker.stream[1].s"},
		{`["worker.name"]`, `["worker.app"].key`, `["worker.logger"].token`, `['worker.caller']`, `["worker.stream"][1].s`},
	} {
		r, err := NewRedactor(paths, "***")
		if err != nil {
			t.Fatal(err)
		}
		out := relayJSON(t, r, line)
		if len(out) != 1 {
			t.Fatalf("%q: %q", paths, out)
		}
		wantMembers(t, out[0], map[string]string{
			"name":          `"api"`,
			"worker":        `0`,
			"worker.name":   `"***"`,
			"worker.app":    `{"key":"***","other":"keep"}`,
			"worker.logger": `{"token":"***"}`,
			"worker.caller": `"***"`,
			"worker.stream": `[1,{"s":"***"}]`,
			"other":         `"keep"`,
			"pid":           `4242`,
		})
	}
	// A path that reaches no renamed member leaves them as they are.
	r, _ := NewRedactor([]string{"app.missing", "name.x", "worker.nam", "worker.app.key.deeper", "worker.name.x", "worker.worker.name"}, "***")
	wantMembers(t, relayJSON(t, r, line)[0], map[string]string{
		"worker":      `0`,
		"worker.name": `"NAMESECRET"`,
		"worker.app":  `{"key":"APPKEY","other":"keep"}`,
	})
}

// TestDuplicateKeysAreWrittenOnce: a record with a key twice is written
// with the last value in the first place, as JSON.parse reads it, and a
// renamed member does not take the key of a member the app already has.
func TestDuplicateKeysAreWrittenOnce(t *testing.T) {
	out := relayJSON(t, nil,
		`{"level":30,"a":1,"a":2,"name":"n1","worker.name":"n2","msg":"dup"}`,
		`{"level":30,"msg":"deeper","name":"n1","worker.name":"n2","worker.worker.name":"n3","b":{"x":1},"b":{"y":2}}`,
		`{"level":30,"msg":"one","msg":"two","level":40,"time":1,"time":2}`,
		`{"name":"plain","worker.name":"w","time":1,"time":"t"}`,
	)
	if len(out) != 4 {
		t.Fatalf("got %q", out)
	}
	wantMembers(t, out[0], map[string]string{"a": `2`, "worker.name": `"n2"`, "worker.worker.name": `"n1"`, "name": `"api"`})
	if i, j := strings.Index(out[0], `"a":`), strings.Index(out[0], `"worker.worker.name":`); i < 0 || j < i {
		t.Errorf("a should keep its first place: %s", out[0])
	}
	wantMembers(t, out[1], map[string]string{"worker.name": `"n2"`, "worker.worker.name": `"n3"`, "worker.worker.worker.name": `"n1"`, "b": `{"y":2}`})
	wantMembers(t, out[2], map[string]string{"msg": `"two"`, "level": `40`})
	wantMembers(t, out[3], map[string]string{"worker.name": `"w"`, "worker.worker.name": `"plain"`, "worker.time": `"t"`})

	// Long records use an index rather than a scan.
	var b strings.Builder
	b.WriteString(`{"level":30,"msg":"long"`)
	for i := range 3 * scanMembers {
		fmt.Fprintf(&b, `,"k%d":%d`, i%(2*scanMembers), i)
	}
	b.WriteString(`,"worker.name":"w","name":"n"}`)
	long := relayJSON(t, nil, b.String())[0]
	want := map[string]string{"worker.name": `"w"`, "worker.worker.name": `"n"`}
	for i := range 2 * scanMembers {
		last := i
		if i < scanMembers {
			last += 2 * scanMembers
		}
		want[fmt.Sprintf("k%d", i)] = strconv.Itoa(last)
	}
	wantMembers(t, long, want)
	if n := len(strictMembers(t, long)); n != 2*scanMembers+2+7 { // and level, time, name, msg, worker, pid, hostname
		t.Errorf("%d members in %s", n, long)
	}
}

// TestNumbersKeepTheirText: a worker's numbers are written as it wrote
// them, integers beyond int64 and floats float64 would round included, at
// the top level, renamed and nested; the JSON stays valid.
func TestNumbersKeepTheirText(t *testing.T) {
	nums := []string{
		"123456789012345678901234567890", "18446744073709551615", "9223372036854775808",
		"-9223372036854775809", "9223372036854775807", "-42", "0", "1.25", "0.1",
		"1e-7", "1E+21", "1.50", "12345678901234567.5", "1e400", "100000000000000000000",
	}
	var b strings.Builder
	b.WriteString(`{"level":30,"msg":"numbers"`)
	for i, n := range nums {
		fmt.Fprintf(&b, `,"n%d":%s`, i, n)
	}
	b.WriteString(`,"name":18446744073709551615,"nested":{"n":123456789012345678901234567890}}`)
	for _, console := range []bool{false, true} {
		var buf bytes.Buffer
		env := map[string]string{}
		if console {
			env[FormatEnv] = "console"
		}
		logger, _, err := newLogger(Setup{Level: "info"}, zapcore.AddSync(&buf), false, func(k string) string { return env[k] })
		if err != nil {
			t.Fatal(err)
		}
		s := NewSink(logger.Named("app").With(zap.String("app", "api"), zap.Int("worker", 0)), Options{})
		s.Follow(strings.NewReader(b.String()+"\n"), "stdout")
		s.Close()
		line := strings.TrimSpace(buf.String())
		if console {
			// The console format's fields are one JSON object at the end.
			line = line[strings.Index(line, "{"):]
		}
		want := map[string]string{"worker.name": "18446744073709551615", "nested": `{"n":123456789012345678901234567890}`}
		for i, n := range nums {
			want[fmt.Sprintf("n%d", i)] = n
		}
		wantMembers(t, line, want)
	}
}
