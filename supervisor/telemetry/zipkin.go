package telemetry

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/openzipkin/zipkin-go/model"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/wattd/wattd/mesh"
)

// zipkinPostSpans bounds the spans of one POST to a Zipkin collector: a
// batch of the pipeline's (up to DefaultBatchSize spans) goes out in
// several, each well under the request size a Zipkin server takes.
const zipkinPostSpans = 500

// zipkinExporter posts spans to a Zipkin collector's v2 API
// (POST /api/v2/spans, a JSON list), as Watt's zipkin exporter does. The
// spans are the SDK's form of the workers' OTLP spans (ReadOnly), turned
// into Zipkin's span model as OpenTelemetry's mapping to Zipkin says:
// service.name becomes the local endpoint's service name, attributes,
// the other resource attributes and the status become tags.
type zipkinExporter struct {
	url     string
	headers map[string]string
	client  *http.Client
	// service names an application as its spans' service.name does, for
	// the remote endpoint of a mesh call (to "<app>.plt.local").
	service func(app string) string
	// diag, when not nil (watt.json's diagLogger), logs every retry.
	diag *zap.Logger
}

func newZipkinExporter(url string, headers map[string]string, service func(string) string) *zipkinExporter {
	return &zipkinExporter{url: url, headers: headers, client: &http.Client{}, service: service}
}

func (e *zipkinExporter) export(ctx context.Context, batches []batch) error {
	var spans []model.SpanModel
	for _, b := range batches {
		for j, sp := range b.pb {
			spans = append(spans, zipkinSpan(ReadOnlyIn(sp, b.src.res, b.scope(j)), e.service))
		}
		if len(b.http) > 0 {
			for _, sp := range SpansFromHTTP(b.http) {
				spans = append(spans, zipkinSpan(ReadOnly(sp, b.src.res), e.service))
			}
		}
	}
	for len(spans) > 0 {
		n := min(len(spans), zipkinPostSpans)
		if err := e.post(ctx, spans[:n]); err != nil {
			return err
		}
		spans = spans[n:]
	}
	return nil
}

// Backoff of the retries of one POST: doubling from zipkinRetryFirst up to
// zipkinRetryMax, for as long as the export's context allows.
const (
	zipkinRetryFirst = 250 * time.Millisecond
	zipkinRetryMax   = 4 * time.Second
)

// post sends one list of spans. A collector that cannot be reached or
// answers 429, 502, 503 or 504 (restarting, overloaded) is tried again
// until the export's deadline; any other answer but 2xx is an error at
// once. An error names the status and the start of the collector's answer.
func (e *zipkinExporter) post(ctx context.Context, spans []model.SpanModel) error {
	body, err := json.Marshal(spans)
	if err != nil {
		return fmt.Errorf("zipkin: encoding %d spans: %w", len(spans), err)
	}
	wait := zipkinRetryFirst
	for {
		retry, err := e.postOnce(ctx, body)
		if err == nil || !retry {
			return err
		}
		if e.diag != nil {
			e.diag.Info("zipkin: trying again", zap.Error(err), zap.Duration("in", wait), zap.Int("spans", len(spans)))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, zipkinRetryMax)
	}
}

func (e *zipkinExporter) postOnce(ctx context.Context, body []byte) (retry bool, _ error) {
	retry, err := postOnce(ctx, e.client, e.url, "application/json", e.headers, body)
	if err != nil {
		err = fmt.Errorf("zipkin: %w", err)
	}
	return retry, err
}

// postOnce POSTs body to url once, as the Zipkin and log exporters send
// their batches. retry tells whether a failure is worth trying again: the
// endpoint could not be reached, or answered 429, 502, 503 or 504
// (restarting, overloaded). An error names the status and the start of
// the endpoint's answer.
func postOnce(ctx context.Context, c *http.Client, url, contentType string, headers map[string]string, body []byte) (retry bool, _ error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return ctx.Err() == nil, err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // keep the connection
	if resp.StatusCode/100 == 2 {
		return false, nil
	}
	err = fmt.Errorf("%s answered %s: %s", url, resp.Status, strings.TrimSpace(string(answer)))
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true, err
	}
	return false, err
}

func (e *zipkinExporter) shutdown(context.Context) error {
	e.client.CloseIdleConnections()
	return nil
}

// zipkinSpan is the Zipkin form of one span.
func zipkinSpan(s sdktrace.ReadOnlySpan, service func(string) string) model.SpanModel {
	sc := s.SpanContext()
	tid := sc.TraceID()
	sid := sc.SpanID()
	m := model.SpanModel{
		SpanContext: model.SpanContext{
			TraceID: model.TraceID{
				High: binary.BigEndian.Uint64(tid[:8]),
				Low:  binary.BigEndian.Uint64(tid[8:]),
			},
			ID: model.ID(binary.BigEndian.Uint64(sid[:])),
		},
		Name:      s.Name(),
		Kind:      zipkinKind(s.SpanKind()),
		Timestamp: s.StartTime(),
		Duration:  max(s.EndTime().Sub(s.StartTime()), 0),
		Tags:      map[string]string{},
	}
	if p := s.Parent(); p.SpanID().IsValid() {
		psid := p.SpanID()
		id := model.ID(binary.BigEndian.Uint64(psid[:]))
		m.ParentID = &id
	}
	local := ""
	if res := s.Resource(); res != nil {
		for _, kv := range res.Attributes() {
			if kv.Key == "service.name" {
				local = kv.Value.Emit()
				continue
			}
			m.Tags[string(kv.Key)] = tagValue(kv.Value)
		}
	}
	m.LocalEndpoint = &model.Endpoint{ServiceName: local}
	for _, kv := range s.Attributes() {
		m.Tags[string(kv.Key)] = tagValue(kv.Value)
	}
	m.RemoteEndpoint = remoteEndpoint(s.SpanKind(), s.Attributes(), service)
	if sc := s.InstrumentationScope(); sc.Name != "" {
		m.Tags["otel.scope.name"] = sc.Name
		if sc.Version != "" {
			m.Tags["otel.scope.version"] = sc.Version
		}
	}
	switch st := s.Status(); st.Code {
	case codes.Error:
		m.Tags["otel.status_code"] = "ERROR"
		// Zipkin marks a span failed by its "error" tag, whose value
		// says why: the status's description, else the error's type.
		m.Tags["error"] = st.Description
		if st.Description == "" {
			m.Tags["error"] = m.Tags["error.type"]
		}
	case codes.Ok:
		m.Tags["otel.status_code"] = "OK"
	}
	for _, ev := range s.Events() {
		v := ev.Name
		if len(ev.Attributes) > 0 {
			attrs := make(map[string]any, len(ev.Attributes))
			for _, kv := range ev.Attributes {
				attrs[string(kv.Key)] = kv.Value.AsInterface()
			}
			if b, err := json.Marshal(map[string]any{ev.Name: attrs}); err == nil {
				v = string(b)
			}
		}
		m.Annotations = append(m.Annotations, model.Annotation{Timestamp: ev.Time, Value: v})
	}
	if len(m.Tags) == 0 {
		m.Tags = nil
	}
	return m
}

func zipkinKind(k trace.SpanKind) model.Kind {
	switch k {
	case trace.SpanKindServer:
		return model.Server
	case trace.SpanKindClient:
		return model.Client
	case trace.SpanKindProducer:
		return model.Producer
	case trace.SpanKindConsumer:
		return model.Consumer
	}
	return model.Undetermined
}

// tagValue is an attribute's value as a Zipkin tag, which is a string:
// lists as JSON lists, the rest in their plain text form.
func tagValue(v attribute.Value) string {
	switch v.Type() {
	case attribute.BOOLSLICE, attribute.INT64SLICE, attribute.FLOAT64SLICE, attribute.STRINGSLICE:
		if b, err := json.Marshal(v.AsInterface()); err == nil {
			return string(b)
		}
	case attribute.FLOAT64:
		return strconv.FormatFloat(v.AsFloat64(), 'g', -1, 64)
	}
	return v.Emit()
}

// remoteEndpoint is the other side of a client or producer span, from
// its peer.service or server address attributes; nil when they name none.
// A call on the mesh (to "<app>.plt.local") names the service of that app.
func remoteEndpoint(kind trace.SpanKind, attrs []attribute.KeyValue, service func(string) string) *model.Endpoint {
	if kind != trace.SpanKindClient && kind != trace.SpanKindProducer {
		return nil
	}
	var ep model.Endpoint
	host := ""
	for _, kv := range attrs {
		switch kv.Key {
		case "peer.service":
			ep.ServiceName = kv.Value.AsString()
		case "server.address", "net.peer.name":
			if host == "" {
				host = kv.Value.AsString()
			}
		case "server.port", "net.peer.port":
			if p := kv.Value.AsInt64(); p > 0 && p < 1<<16 {
				ep.Port = uint16(p)
			}
		}
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip4 := ip.To4(); ip4 != nil {
			ep.IPv4 = ip4
		} else {
			ep.IPv6 = ip
		}
	} else if ep.ServiceName == "" && host != "" {
		ep.ServiceName = host
		if app, ok := mesh.AppOf(host); ok && service != nil {
			ep.ServiceName = service(app)
		}
	}
	if ep.Empty() {
		return nil
	}
	return &ep
}
