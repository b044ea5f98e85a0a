package metrics

import "github.com/prometheus/client_golang/prometheus"

// spansCollector exports the tracing pipeline's span counters, per
// application; an application has none while tracing is off.
type spansCollector struct {
	src               Source
	received, dropped *prometheus.Desc
}

func newSpansCollector(src Source, constLabels prometheus.Labels) *spansCollector {
	return &spansCollector{
		src: src,
		received: prometheus.NewDesc("wattd_spans_received_total",
			"Trace spans the application's workers sent to wattd, valid or not.", []string{appLabel}, constLabels),
		dropped: prometheus.NewDesc("wattd_spans_dropped_total",
			"Trace spans of the application wattd dropped: invalid (they broke the spans message's rules) or queue_full (an exporter's queue was full).",
			[]string{appLabel, "reason"}, constLabels),
	}
}

func (c *spansCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.received
	ch <- c.dropped
}

func (c *spansCollector) Collect(ch chan<- prometheus.Metric) {
	for _, a := range c.src.Apps() {
		if a.Spans == nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.received, prometheus.CounterValue, float64(a.Spans.Received), a.ID)
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(a.Spans.Invalid), a.ID, "invalid")
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(a.Spans.QueueFull), a.ID, "queue_full")
	}
}
