package telemetry

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/wattd/wattd/ipc"
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

func BenchmarkDecodeConvert(b *testing.B) {
	raw := spansPayload(100)
	res := resource.Empty()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		spans, _, _ := ipc.DecodeSpans(raw)
		for j := range spans {
			_ = Convert(&spans[j], res)
		}
	}
}
