package telemetry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor/config"
)

func spansPayload(n int) json.RawMessage {
	var b strings.Builder
	b.WriteByte('[')
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"traceId":"4bf92f3577b34da6a3ce929d0e0e%04x","spanId":"00f067aa0ba9%04x","name":"GET /","kind":"server","startMs":1764672000123.456,"endMs":1764672000125.789,"attributes":{"http.request.method":"GET","url.path":"/","url.scheme":"http","server.address":"127.0.0.1","server.port":3042,"http.response.status_code":200},"status":"unset"}`, i+1, i+1)
	}
	b.WriteByte(']')
	return json.RawMessage(b.String())
}

// httpPayload is a binary spans frame's payload (after the tag) of n
// server spans like the Node preload sends for a hello app.
func httpPayload(n int) []byte {
	spans := make([]ipc.HTTPSpan, n)
	for i := range spans {
		s := &spans[i]
		s.Kind, s.Status = ipc.SpanBinServer, 200
		s.StartMs, s.EndMs = 1764672000123.456, 1764672000125.789
		s.TraceID[0], s.TraceID[15], s.SpanID[7] = 0x4b, byte(i+1), byte(i+1)
		s.Method, s.Target, s.Host = "GET", "/", "127.0.0.1:3042"
	}
	return ipc.AppendHTTPSpans(nil, spans)[5:]
}

// BenchmarkDecodeConvert is wattd's work per JSON span up to the OTLP
// form the exporters upload.
func BenchmarkDecodeConvert(b *testing.B) {
	raw := spansPayload(100)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		spans, _, _ := ipc.DecodeSpans(raw)
		_ = spansFromJSON(spans)
	}
}

// BenchmarkDecodeHTTP is the same for the binary frame of Node workers.
func BenchmarkDecodeHTTP(b *testing.B) {
	p := httpPayload(100)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		spans, _, _ := ipc.DecodeHTTPSpans(p)
		_ = SpansFromHTTP(spans)
	}
}

// BenchmarkPipelineOTLPHTTP is wattd's whole work per span of a Node
// worker: decoding, building and uploading over OTLP/HTTP to a server
// that discards the body, as the bench's sink does.
func BenchmarkPipelineOTLPHTTP(b *testing.B) {
	var spans atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	p, err := New(Options{Config: config.Telemetry{Enabled: true, Exporters: []config.Exporter{{Type: config.ExporterOTLP, Protocol: config.ProtocolHTTP, URL: srv.URL + "/v1/traces"}}}})
	if err != nil {
		b.Fatal(err)
	}
	src := p.Source("hello", 0, 1)
	const per = 100
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// A fresh payload per message, as each comes off the channel.
		src.IngestBinary(httpPayload(per))
		spans.Add(per)
		for p.sinks[0].queued.Load() > 4000 {
			time.Sleep(time.Millisecond)
		}
	}
	if err := p.Shutdown(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(spans.Load()), "ns/span")
}
