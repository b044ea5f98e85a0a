package telemetry

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/wattd/wattd/supervisor/config"
	"github.com/wattd/wattd/supervisor/logs"
)

// Log export: Watt's logger.openTelemetryExporter. Every entry wattd
// writes (its own and the lines of the applications, after redaction and
// level filtering) is also a LogRecord sent to an OTLP logs endpoint, with
// the trace and span ids of the request it was written in (the traceId and
// spanId of a worker's line), so a log backend links it to the trace.
//
// The log must never wait for the exporter: a record is queued without
// blocking, and past logQueue records waiting it is dropped and counted.
// A sender goroutine posts batches of at most logBatch records, at once
// when one is full and otherwise every logEvery; a batch that fails is
// tried again (logTries in all, backing off) and then dropped and counted.
const (
	logQueue   = 8192
	logBatch   = 512
	logEvery   = time.Second
	logTimeout = 10 * time.Second
	logTries   = 3
	// logWarnEvery bounds the warnings about failed exports: they are log
	// entries too, and are exported when the endpoint comes back.
	logWarnEvery = 30 * time.Second
)

// LogExporter sends log entries over OTLP. Line is what the logger gives
// each entry to; Shutdown sends what is queued.
type LogExporter struct {
	queue    chan *logspb.LogRecord
	resource *resourcepb.Resource
	// send sends one request; retry tells whether a failure may pass.
	send     func(context.Context, *collogspb.ExportLogsServiceRequest) (retry bool, err error)
	closeFn  func() error
	endpoint string

	exported, dropped atomic.Uint64

	mu      sync.Mutex
	warn    *zap.Logger  // where failures are told, once set
	warnLim logs.Limiter // one failure told per logWarnEvery

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	leftover []*logspb.LogRecord // run's batch when it stopped
}

// NewLogExporter starts the sender for cfg; it makes no connection until
// the first batch.
func NewLogExporter(cfg config.LogExport) (*LogExporter, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("logger.openTelemetryExporter: %q is not an http:// or https:// URL", cfg.URL)
	}
	e := &LogExporter{
		queue:    make(chan *logspb.LogRecord, logQueue),
		resource: logResource(cfg),
		endpoint: cfg.URL,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	switch cfg.Protocol {
	case "grpc":
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "4317")
		}
		creds := insecure.NewCredentials()
		if u.Scheme == "https" {
			creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
		}
		conn, err := grpc.NewClient(host, grpc.WithTransportCredentials(creds))
		if err != nil {
			return nil, fmt.Errorf("logger.openTelemetryExporter: %w", err)
		}
		client := collogspb.NewLogsServiceClient(conn)
		e.send = func(ctx context.Context, req *collogspb.ExportLogsServiceRequest) (bool, error) {
			_, err := client.Export(ctx, req)
			return true, err
		}
		e.closeFn = conn.Close
	case "http", "":
		hc := &http.Client{Timeout: logTimeout}
		e.send = func(ctx context.Context, req *collogspb.ExportLogsServiceRequest) (bool, error) {
			body, err := proto.Marshal(req)
			if err != nil {
				return false, err
			}
			return postOnce(ctx, hc, cfg.URL, "application/x-protobuf", nil, body)
		}
		e.closeFn = func() error { hc.CloseIdleConnections(); return nil }
	default:
		return nil, fmt.Errorf("logger.openTelemetryExporter: protocol %q is not http or grpc", cfg.Protocol)
	}
	go e.run()
	return e, nil
}

// logResource is the entries' resource: telemetry's service name and
// version, as Watt's log exporter names them.
func logResource(cfg config.LogExport) *resourcepb.Resource {
	name := cfg.ServiceName
	if name == "" {
		name = "wattd"
	}
	attrs := []*commonpb.KeyValue{{Key: "service.name", Value: strValue(name)}}
	if cfg.Version != "" {
		attrs = append(attrs, &commonpb.KeyValue{Key: "service.version", Value: strValue(cfg.Version)})
	}
	return &resourcepb.Resource{Attributes: attrs}
}

func strValue(s string) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
}

// SetLogger is where failed exports are told.
func (e *LogExporter) SetLogger(l *zap.Logger) {
	e.mu.Lock()
	e.warn = l
	e.mu.Unlock()
}

// Counts are the records sent and those dropped (queue full, or their
// batch failed).
func (e *LogExporter) Counts() (exported, dropped uint64) {
	return e.exported.Load(), e.dropped.Load()
}

// Line queues one entry, given as wattd writes it: a pino JSON line
// (logs.Setup.Export), after redaction and level filtering. It never
// blocks: past logQueue records waiting, the entry is dropped and counted.
func (e *LogExporter) Line(line []byte) {
	r, ok := logRecordOf(line)
	if !ok {
		e.dropped.Add(1)
		return
	}
	select {
	case e.queue <- r:
	default:
		e.dropped.Add(1)
	}
}

// logRecordOf makes the OTLP record of a pino line: level and time as the
// record's severity and time, msg its body, traceId and spanId its trace
// context, every other member an attribute (objects as key-value lists,
// arrays as arrays).
func logRecordOf(line []byte) (*logspb.LogRecord, bool) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, false
	}
	r := &logspb.LogRecord{ObservedTimeUnixNano: uint64(time.Now().UnixNano())}
	r.TimeUnixNano = r.ObservedTimeUnixNano
	if n, ok := m["time"].(json.Number); ok {
		if ms, err := n.Float64(); err == nil && ms > 0 && ms < 1e14 {
			r.TimeUnixNano = msNanos(ms)
		}
	}
	level := int64(30)
	if n, ok := m["level"].(json.Number); ok {
		if v, err := n.Int64(); err == nil {
			level = v
		}
	}
	r.SeverityNumber, r.SeverityText = severity(level)
	if msg, ok := m["msg"].(string); ok {
		r.Body = strValue(msg)
	}
	skip := map[string]bool{"level": true, "time": true, "msg": true}
	// wattd's names (the preload's logger), then those of OpenTelemetry's
	// pino instrumentation (an app's own pino with an SDK of its own).
	for _, k := range [][2]string{{"traceId", "spanId"}, {"trace_id", "span_id"}} {
		if id, ok := hexBytes(m[k[0]], 16); ok {
			r.TraceId = id
			skip[k[0]] = true
			if sid, ok := hexBytes(m[k[1]], 8); ok {
				r.SpanId = sid
				skip[k[1]] = true
			}
			break
		}
	}
	r.Attributes = appendAttrs(nil, m, skip, 0)
	return r, true
}

// severity is OpenTelemetry's severity of a pino level (10 trace, 20
// debug, 30 info, 40 warn, 50 error, 60 fatal) and pino's name of it.
func severity(level int64) (logspb.SeverityNumber, string) {
	switch {
	case level < 20:
		return logspb.SeverityNumber_SEVERITY_NUMBER_TRACE, "trace"
	case level < 30:
		return logspb.SeverityNumber_SEVERITY_NUMBER_DEBUG, "debug"
	case level < 40:
		return logspb.SeverityNumber_SEVERITY_NUMBER_INFO, "info"
	case level < 50:
		return logspb.SeverityNumber_SEVERITY_NUMBER_WARN, "warn"
	case level < 60:
		return logspb.SeverityNumber_SEVERITY_NUMBER_ERROR, "error"
	}
	return logspb.SeverityNumber_SEVERITY_NUMBER_FATAL, "fatal"
}

func hexBytes(v any, n int) ([]byte, bool) {
	s, ok := v.(string)
	if !ok || len(s) != 2*n {
		return nil, false
	}
	b, err := hex.DecodeString(s)
	if err != nil || bytes.Count(b, []byte{0}) == n {
		return nil, false
	}
	return b, true
}

// appendAttrs adds the members of m as attributes, in key order, leaving
// out the keys in skip.
func appendAttrs(out []*commonpb.KeyValue, m map[string]any, skip map[string]bool, depth int) []*commonpb.KeyValue {
	keys := make([]string, 0, len(m))
	for k := range m {
		if !skip[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, &commonpb.KeyValue{Key: k, Value: jsonValue(m[k], depth)})
	}
	return out
}

// jsonValue is the attribute value of a decoded JSON value; past a depth
// of 8, nested objects and arrays are their JSON text.
func jsonValue(v any, depth int) *commonpb.AnyValue {
	switch v := v.(type) {
	case string:
		return strValue(v)
	case bool:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: v}}
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: n}}
		}
		f, _ := v.Float64()
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: f}}
	case nil:
		return &commonpb.AnyValue{}
	}
	if depth >= 8 {
		b, _ := json.Marshal(v)
		return strValue(string(b))
	}
	switch v := v.(type) {
	case map[string]any:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: appendAttrs(nil, v, nil, depth+1)}}}
	case []any:
		arr := &commonpb.ArrayValue{Values: make([]*commonpb.AnyValue, len(v))}
		for i, x := range v {
			arr.Values[i] = jsonValue(x, depth+1)
		}
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: arr}}
	}
	return strValue(fmt.Sprint(v))
}

// run sends batches until Shutdown.
func (e *LogExporter) run() {
	defer close(e.done)
	tick := time.NewTicker(logEvery)
	defer tick.Stop()
	batch := make([]*logspb.LogRecord, 0, logBatch)
	// flush sends the batch. An export can take longer than logEvery (a
	// slow collector): the tick that came meanwhile must not send the
	// record or two taken since, while the queue holds hundreds, so the
	// period starts again after each export.
	flush := func() {
		e.export(context.Background(), batch)
		batch = batch[:0]
		tick.Reset(logEvery)
	}
	for {
		select {
		case r := <-e.queue:
			batch = append(batch, r)
			if len(batch) == logBatch {
				flush()
			}
		case <-tick.C:
			// What is queued goes too, up to a full batch.
			for len(batch) < logBatch {
				select {
				case r := <-e.queue:
					batch = append(batch, r)
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				flush()
			}
		case <-e.stop:
			e.leftover = batch
			return
		}
	}
}

// export sends one batch, trying logTries times.
func (e *LogExporter) export(ctx context.Context, batch []*logspb.LogRecord) {
	req := e.request(batch)
	var err error
	backoff := 250 * time.Millisecond
	for try := 0; try < logTries; try++ {
		if try > 0 {
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			case <-e.stop:
			}
			backoff *= 2
		}
		c, cancel := context.WithTimeout(ctx, logTimeout)
		var retry bool
		retry, err = e.send(c, req)
		cancel()
		if err == nil {
			e.exported.Add(uint64(len(batch)))
			return
		}
		if !retry || ctx.Err() != nil {
			break
		}
	}
	e.dropped.Add(uint64(len(batch)))
	e.warnFailure(len(batch), err)
}

// request is the export request of a batch.
func (e *LogExporter) request(batch []*logspb.LogRecord) *collogspb.ExportLogsServiceRequest {
	return &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
		Resource:  e.resource,
		ScopeLogs: []*logspb.ScopeLogs{{Scope: &commonpb.InstrumentationScope{Name: "wattd"}, LogRecords: batch}},
	}}}
}

func (e *LogExporter) warnFailure(n int, err error) {
	e.mu.Lock()
	l := e.warn
	e.mu.Unlock()
	if l == nil {
		return
	}
	if _, ok := e.warnLim.Allow(time.Now(), logWarnEvery); !ok {
		return
	}
	exported, dropped := e.Counts()
	l.Warn("log export failed; the entries are dropped", zap.String("endpoint", e.endpoint), zap.Int("entries", n),
		zap.Uint64("exportedSoFar", exported), zap.Uint64("droppedSoFar", dropped), zap.Error(err))
}

// Shutdown sends what is queued, within ctx, and closes the connection.
func (e *LogExporter) Shutdown(ctx context.Context) error {
	e.stopOnce.Do(func() { close(e.stop) })
	select {
	case <-e.done:
	case <-ctx.Done():
		// A batch still being tried: what is queued stays unsent.
		e.dropped.Add(uint64(len(e.queue)))
		return errors.Join(ctx.Err(), e.closeFn())
	}
	batch := e.leftover
	for {
		select {
		case r := <-e.queue:
			batch = append(batch, r)
			if len(batch) < logBatch {
				continue
			}
		default:
		}
		if len(batch) == 0 {
			break
		}
		e.exportOnce(ctx, batch)
		batch = nil
		if ctx.Err() != nil {
			break
		}
	}
	e.dropped.Add(uint64(len(e.queue)))
	return e.closeFn()
}

// exportOnce is export without retries, for Shutdown.
func (e *LogExporter) exportOnce(ctx context.Context, batch []*logspb.LogRecord) {
	if _, err := e.send(ctx, e.request(batch)); err != nil {
		e.dropped.Add(uint64(len(batch)))
		return
	}
	e.exported.Add(uint64(len(batch)))
}
