package metrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/wattd/wattd/supervisor/config"
	"github.com/wattd/wattd/supervisor/secrets"
)

// runtimeService is the service.name of the series that belong to no
// application (wattd's own), unless the configuration names one.
const runtimeService = "wattd"

// otlpTimeout bounds one push; a collector slower than that loses the
// push, and the next one carries the same cumulative figures.
const otlpTimeout = 10 * time.Second

// otlpPusher pushes what the endpoint serves to an OTLP/HTTP collector
// every interval, when asked to (as the runtime's shutdown begins, while
// the workers and their figures are still there), and once more when it
// stops (wattd's own figures at the end).
type otlpPusher struct {
	cfg    config.OTLPMetrics
	g      prometheus.Gatherer
	client *http.Client
	log    *zap.Logger
	conv   *otlpConverter
	kick   chan struct{} // a push now, see Server.PushNow
	stop   chan struct{}
	done   chan struct{}
	// ctx is the pushes' until Close, which cancels a push in flight so
	// that a collector that does not answer cannot hold up the exit.
	ctx     context.Context
	cancel  context.CancelFunc
	once    sync.Once
	failing bool // since the last push that went through
}

func startOTLP(cfg config.OTLPMetrics, appLabel string, g prometheus.Gatherer, log *zap.Logger) *otlpPusher {
	p := &otlpPusher{
		cfg: cfg, g: g,
		client: &http.Client{Timeout: min(otlpTimeout, max(cfg.Interval, time.Second))},
		log:    log.With(zap.String("endpoint", secrets.URL(cfg.Endpoint))),
		conv:   newOTLPConverter(appLabel, cfg.ServiceName, cfg.ServiceVersion, time.Now()),
		kick:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	go p.run()
	p.log.Info("pushing metrics over OTLP", zap.Duration("interval", cfg.Interval))
	return p
}

func (p *otlpPusher) run() {
	defer close(p.done)
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			p.pushLogged(p.ctx)
		case <-p.kick:
			p.pushLogged(p.ctx)
		case <-p.stop:
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			p.pushLogged(ctx)
			cancel()
			return
		}
	}
}

// Close cuts a push in flight short, makes the last push and returns
// when it is done (at most 2 s).
func (p *otlpPusher) Close() {
	p.once.Do(func() {
		p.cancel()
		close(p.stop)
	})
	<-p.done
}

// pushLogged pushes and says so when pushes start failing and when they
// go through again, not at every failed interval.
func (p *otlpPusher) pushLogged(ctx context.Context) {
	err := p.push(ctx)
	switch {
	case err != nil && errors.Is(ctx.Err(), context.Canceled):
		// Cut short by Close, whose own push follows.
	case err != nil && !p.failing:
		p.failing = true
		p.log.Warn("cannot push metrics over OTLP; trying again at every interval", zap.Error(err))
	case err != nil:
		p.log.Debug("cannot push metrics over OTLP", zap.Error(err))
	case p.failing:
		p.failing = false
		p.log.Info("pushing metrics over OTLP again")
	}
}

func (p *otlpPusher) push(ctx context.Context) error {
	// A family that failed to gather is left out; the rest still go.
	fams, _ := p.g.Gather()
	body, err := proto.Marshal(p.conv.request(fams, time.Now()))
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.Endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range p.cfg.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the collector answered %s: %q", resp.Status, msg)
	}
	return nil
}

// otlpConverter turns gathered families into an OTLP export request:
// one resource per application (the series that carry its label), one for
// the rest, or a single one when the configuration names the service;
// every label is an attribute. Counters become monotonic
// cumulative sums, gauges and untyped series gauges, histograms and
// summaries their OTLP kin.
//
// A cumulative series starts when the converter was made if the first
// request has it, else at the request before the one it first appears in
// (it did not exist then), and again whenever its value falls (a replaced
// worker counts from zero), so that a collector that turns cumulative
// figures into deltas sees a reset rather than a negative delta.
type otlpConverter struct {
	appLabel, serviceName, serviceVersion string
	prev                                  time.Time              // the converter's start, then each request's time
	series                                map[string]seriesStart // of the previous request
}

type seriesStart struct {
	start time.Time
	last  float64 // the counter's value, the histogram's or summary's count
}

func newOTLPConverter(appLabel, serviceName, serviceVersion string, start time.Time) *otlpConverter {
	return &otlpConverter{appLabel: appLabel, serviceName: serviceName, serviceVersion: serviceVersion,
		prev: start, series: map[string]seriesStart{}}
}

func (c *otlpConverter) request(fams []*dto.MetricFamily, now time.Time) *colmetricspb.ExportMetricsServiceRequest {
	type resource struct {
		metrics []*metricspb.Metric
		byName  map[string]*metricspb.Metric
	}
	resources := map[string]*resource{}
	seen := make(map[string]seriesStart, len(c.series))
	ts := uint64(now.UnixNano())
	// startOf is the series' start time, kept from one request to the next.
	startOf := func(key string, v float64) uint64 {
		s, ok := c.series[key]
		switch {
		case !ok:
			s.start = c.prev
		case v < s.last:
			s.start = c.prev // reset since the previous request
		}
		s.last = v
		seen[key] = s
		return uint64(s.start.UnixNano())
	}
	for _, f := range fams {
		if newOTLPMetric(f) == nil {
			continue // a type OTLP has no kin for
		}
		for _, m := range f.GetMetric() {
			app := ""
			attrs := make([]*commonpb.KeyValue, 0, len(m.GetLabel()))
			for _, l := range m.GetLabel() {
				if l.GetName() == c.appLabel {
					app = l.GetValue()
				}
				attrs = append(attrs, &commonpb.KeyValue{Key: l.GetName(),
					Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: l.GetValue()}}})
			}
			service := c.service(app)
			r := resources[service]
			if r == nil {
				r = &resource{byName: map[string]*metricspb.Metric{}}
				resources[service] = r
			}
			om := r.byName[f.GetName()]
			if om == nil {
				om = newOTLPMetric(f)
				r.byName[f.GetName()] = om
				r.metrics = append(r.metrics, om)
			}
			key := app + "\x00" + f.GetName() + "\x00" + labelKey(m.GetLabel())
			switch d := om.Data.(type) {
			case *metricspb.Metric_Sum:
				v := m.GetCounter().GetValue()
				d.Sum.DataPoints = append(d.Sum.DataPoints, &metricspb.NumberDataPoint{Attributes: attrs,
					StartTimeUnixNano: startOf(key, v), TimeUnixNano: ts, Value: &metricspb.NumberDataPoint_AsDouble{AsDouble: v}})
			case *metricspb.Metric_Gauge:
				v := m.GetGauge().GetValue()
				if f.GetType() == dto.MetricType_UNTYPED {
					v = m.GetUntyped().GetValue()
				}
				d.Gauge.DataPoints = append(d.Gauge.DataPoints, &metricspb.NumberDataPoint{Attributes: attrs,
					TimeUnixNano: ts, Value: &metricspb.NumberDataPoint_AsDouble{AsDouble: v}})
			case *metricspb.Metric_Histogram:
				h := m.GetHistogram()
				dp := histogramPoint(h)
				dp.Attributes, dp.TimeUnixNano = attrs, ts
				dp.StartTimeUnixNano = startOf(key, float64(h.GetSampleCount()))
				d.Histogram.DataPoints = append(d.Histogram.DataPoints, dp)
			case *metricspb.Metric_Summary:
				s := m.GetSummary()
				dp := &metricspb.SummaryDataPoint{Attributes: attrs, TimeUnixNano: ts,
					Count: s.GetSampleCount(), Sum: s.GetSampleSum()}
				dp.StartTimeUnixNano = startOf(key, float64(s.GetSampleCount()))
				for _, q := range s.GetQuantile() {
					// A summary with no observations in its window has
					// NaN quantiles, which OTLP/JSON cannot encode and
					// collectors reject or mangle: count and sum say it
					// all then.
					if math.IsNaN(q.GetValue()) {
						continue
					}
					dp.QuantileValues = append(dp.QuantileValues, &metricspb.SummaryDataPoint_ValueAtQuantile{Quantile: q.GetQuantile(), Value: q.GetValue()})
				}
				d.Summary.DataPoints = append(d.Summary.DataPoints, dp)
			}
		}
	}
	c.series, c.prev = seen, now

	names := make([]string, 0, len(resources))
	for name := range resources {
		names = append(names, name)
	}
	slices.Sort(names)
	req := &colmetricspb.ExportMetricsServiceRequest{}
	for _, name := range names {
		attrs := []*commonpb.KeyValue{stringAttr("service.name", name)}
		if c.serviceVersion != "" {
			attrs = append(attrs, stringAttr("service.version", c.serviceVersion))
		}
		req.ResourceMetrics = append(req.ResourceMetrics, &metricspb.ResourceMetrics{
			Resource: &resourcepb.Resource{Attributes: attrs},
			ScopeMetrics: []*metricspb.ScopeMetrics{{
				// Named like the service, as Watt's pushes are: a backend
				// that keeps the scope (Prometheus's otel_scope_name)
				// shows the same values.
				Scope:   &commonpb.InstrumentationScope{Name: name, Version: c.serviceVersion},
				Metrics: resources[name].metrics,
			}},
		})
	}
	return req
}

// service is the service.name of an application's series ("" for the
// runtime's own).
func (c *otlpConverter) service(app string) string {
	switch {
	case c.serviceName != "":
		return c.serviceName
	case app == "":
		return runtimeService
	}
	return app
}

func stringAttr(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

// newOTLPMetric is the empty OTLP metric of a family's type; nil for a
// type OTLP has no kin for (gauge histograms).
func newOTLPMetric(f *dto.MetricFamily) *metricspb.Metric {
	om := &metricspb.Metric{Name: f.GetName(), Description: f.GetHelp()}
	switch f.GetType() {
	case dto.MetricType_COUNTER:
		om.Data = &metricspb.Metric_Sum{Sum: &metricspb.Sum{IsMonotonic: true,
			AggregationTemporality: metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE}}
	case dto.MetricType_GAUGE, dto.MetricType_UNTYPED:
		om.Data = &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{}}
	case dto.MetricType_HISTOGRAM:
		om.Data = &metricspb.Metric_Histogram{Histogram: &metricspb.Histogram{
			AggregationTemporality: metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE}}
	case dto.MetricType_SUMMARY:
		om.Data = &metricspb.Metric_Summary{Summary: &metricspb.Summary{}}
	default:
		return nil
	}
	return om
}

// histogramPoint turns Prometheus's cumulative buckets into OTLP's
// explicit bounds and per-bucket counts, the last past every bound.
func histogramPoint(h *dto.Histogram) *metricspb.HistogramDataPoint {
	sum := h.GetSampleSum()
	dp := &metricspb.HistogramDataPoint{Count: h.GetSampleCount(), Sum: &sum}
	var below uint64
	for _, b := range h.GetBucket() {
		if math.IsInf(b.GetUpperBound(), +1) {
			continue
		}
		cum := b.GetCumulativeCount()
		dp.ExplicitBounds = append(dp.ExplicitBounds, b.GetUpperBound())
		dp.BucketCounts = append(dp.BucketCounts, cum-min(cum, below))
		below = max(below, cum)
	}
	dp.BucketCounts = append(dp.BucketCounts, dp.Count-min(dp.Count, below))
	return dp
}
