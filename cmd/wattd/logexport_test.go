package main_test

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/protobuf/proto"
)

// logReceiver serves OTLP/HTTP logs (protobuf) on a loopback port and
// keeps every record with its resource's service.name.
type logReceiver struct {
	url     string
	mu      sync.Mutex
	records []*logspb.LogRecord
	service []string
}

func otlpLogReceiver(t *testing.T) *logReceiver {
	t.Helper()
	r := &logReceiver{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var msg collogspb.ExportLogsServiceRequest
		if req.URL.Path != "/v1/logs" || req.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(body, &msg) != nil {
			http.Error(w, "not an OTLP logs export", http.StatusUnsupportedMediaType)
			return
		}
		r.mu.Lock()
		for _, rl := range msg.ResourceLogs {
			name := ""
			for _, kv := range rl.Resource.GetAttributes() {
				if kv.Key == "service.name" {
					name = kv.Value.GetStringValue()
				}
			}
			for _, sl := range rl.ScopeLogs {
				for _, rec := range sl.LogRecords {
					r.records = append(r.records, rec)
					r.service = append(r.service, name)
				}
			}
		}
		r.mu.Unlock()
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	r.url = "http://" + l.Addr().String() + "/v1/logs"
	return r
}

// find returns the first record whose body is msg and whose attributes
// include want, with its service name.
func (r *logReceiver) find(msg string, want map[string]string) (*logspb.LogRecord, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
next:
	for i, rec := range r.records {
		if rec.Body.GetStringValue() != msg {
			continue
		}
		for k, v := range want {
			found := false
			for _, kv := range rec.Attributes {
				if kv.Key == k && kv.Value.GetStringValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		return rec, r.service[i]
	}
	return nil, ""
}

// TestLogExport: with logger.openTelemetryExporter, the log lines of an
// application's request reach an OTLP logs endpoint with the request's
// trace and span ids, as wattd's own entries do, down to the last one
// written as wattd stops.
func TestLogExport(t *testing.T) {
	integration(t)
	rcv := otlpHTTPReceiver(t)
	logs := otlpLogReceiver(t)
	dir := nodetraceProject(t, 0, rcv.telemetry("shop"),
		map[string]any{"logger": map[string]any{"openTelemetryExporter": map[string]any{"protocol": "http", "url": logs.url}}})
	d := startWattd(t, dir, freePort(t), startOpts{})
	waitHTTP(t, d.url("/"), 30*time.Second)
	d.waitReady("entry", 20*time.Second)
	d.waitReady("internal", 20*time.Second)

	traceID := strings.Repeat("0", 31) + "7"
	code, _, body, err := getWith(fresh, d.url("/chain?via=fetch"), map[string]string{
		"traceparent": "00-" + traceID + "-00f067aa0ba902b7-01", "x-request-id": "logs-1",
	})
	if err != nil || code != 200 || body != "leaf internal" {
		t.Fatalf("GET /chain: %d %q %v", code, body, err)
	}
	var chain, leaf *logspb.LogRecord
	var service string
	defer func() {
		if t.Failed() {
			logs.mu.Lock()
			for i, r := range logs.records {
				t.Logf("record %d (%s): %v", i, logs.service[i], r)
			}
			logs.mu.Unlock()
		}
	}()
	waitFor(t, 10*time.Second, "the request's log records", func() bool {
		chain, service = logs.find("chain done", map[string]string{"name": "entry", "reqId": "logs-1"})
		leaf, _ = logs.find("leaf", map[string]string{"name": "internal", "reqId": "logs-1"})
		return chain != nil && leaf != nil
	})
	// The same ids as the application's line on wattd's output.
	var line map[string]any
	for _, e := range logEntries(d.out.String(), "chain done") {
		if e["reqId"] == "logs-1" {
			line = e
		}
	}
	if line == nil || hex.EncodeToString(chain.TraceId) != traceID || hex.EncodeToString(chain.SpanId) != line["spanId"] ||
		chain.SeverityText != "info" || chain.SeverityNumber != logspb.SeverityNumber_SEVERITY_NUMBER_INFO || service != "shop" {
		t.Errorf("entry's record %v (service %q); its line %v", chain, service, line)
	}
	if hex.EncodeToString(leaf.TraceId) != traceID || len(leaf.SpanId) != 8 || hex.EncodeToString(leaf.SpanId) == hex.EncodeToString(chain.SpanId) {
		t.Errorf("internal's record %v: want the trace, with its own server span", leaf)
	}
	// The status counts them.
	out, err := d.ctl("status", "--json")
	var st struct {
		LogExport *struct{ Exported, Dropped uint64 }
	}
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.LogExport == nil || st.LogExport.Exported < 2 || st.LogExport.Dropped != 0 {
		t.Errorf("ctl status: %v %s", err, out)
	}
	// wattd's own entries go too, the last ones included.
	d.signal(syscall.SIGTERM)
	if c := d.wait(30 * time.Second); c != 0 {
		t.Fatalf("wattd exited %d", c)
	}
	msg := ""
	for _, l := range strings.Split(d.out.String(), "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(l), &e) == nil && e["msg"] != nil {
			msg, _ = e["msg"].(string)
		}
	}
	if msg == "" {
		t.Fatal("no log entries on wattd's output")
	}
	if rec, _ := logs.find(msg, nil); rec == nil {
		t.Errorf("wattd's last entry %q did not reach the endpoint before it exited", msg)
	}
}
