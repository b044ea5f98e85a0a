package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wattd/wattd/ipc"
)

// summaryQuantiles are the quantiles of Watt's http_request_all_summary_seconds
// (prom-client's default percentiles), in ascending order.
var summaryQuantiles = []float64{0.01, 0.05, 0.5, 0.9, 0.95, 0.99, 0.999}

// summaries sends one summary of d per series of h that has a recent
// distribution (ipc.WindowScale): its quantiles read from that window, its
// count and sum those of the series since the worker started, as a
// Prometheus summary's count and sum are. A window with no request in it
// gives NaN quantiles, as a Prometheus summary with no observation in its
// window does. Series that break the protocol are left out, as in
// histograms.
func summaries(ch chan<- prometheus.Metric, d *prometheus.Desc, h *ipc.Histogram, labels func(ipc.HistogramSeries) []string) {
	if h == nil || h.Window == nil || !h.Window.Valid() {
		return
	}
	sc := *h.Window
	eachSeries(h, labels, func(s ipc.HistogramSeries, lv []string) {
		q, ok := sc.Quantiles(s.Window, summaryQuantiles)
		if !ok {
			return
		}
		var n uint64
		for _, c := range s.Counts {
			n += c
		}
		if m, err := prometheus.NewConstSummary(d, n, s.Sum, q, lv...); err == nil {
			ch <- m
		}
	})
}
