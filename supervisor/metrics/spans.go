package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wattd/wattd/supervisor"
)

// spanFamilies are the tracing pipeline's span counters, per application;
// an application has none while tracing is off. The collector exports
// them from the same status snapshot as every other series: reading the
// runtime's status costs a few files of /proc and of the cgroup per
// worker, so a scrape reads it once.
type spanFamilies struct {
	received, dropped *prometheus.Desc
}

func newSpanFamilies(d func(name, help string, labels []string) *prometheus.Desc) spanFamilies {
	return spanFamilies{
		received: d("wattd_spans_received_total",
			"Trace spans the application's workers sent to wattd, valid or not.", []string{appLabel}),
		dropped: d("wattd_spans_dropped_total",
			"Trace spans of the application wattd dropped: invalid (they broke the spans message's rules), queue_full (an exporter's queue was full) or export_failed (an exporter could not send them; once per exporter).",
			[]string{appLabel, "reason"}),
	}
}

func (f *spanFamilies) describe(ch chan<- *prometheus.Desc) {
	ch <- f.received
	ch <- f.dropped
}

func (f *spanFamilies) collectApp(ch chan<- prometheus.Metric, a supervisor.AppStatus) {
	if a.Spans == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(f.received, prometheus.CounterValue, float64(a.Spans.Received), a.ID)
	ch <- prometheus.MustNewConstMetric(f.dropped, prometheus.CounterValue, float64(a.Spans.Invalid), a.ID, "invalid")
	ch <- prometheus.MustNewConstMetric(f.dropped, prometheus.CounterValue, float64(a.Spans.QueueFull), a.ID, "queue_full")
	ch <- prometheus.MustNewConstMetric(f.dropped, prometheus.CounterValue, float64(a.Spans.ExportFailed), a.ID, "export_failed")
}
