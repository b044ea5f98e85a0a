package metrics

import (
	"math"
	"os"
	"testing"

	"github.com/wattd/wattd/ipc"
	"github.com/wattd/wattd/supervisor"
)

// TestRequestSummary: http_request_all_summary_seconds takes its quantiles
// from each series' window (the middle of the bucket that holds the
// ceil(q×n)-th value) and its count and sum from the series since start;
// an empty window gives NaN quantiles; series whose window breaks the
// protocol are left out, the worker's others stay.
func TestRequestSummary(t *testing.T) {
	scale := &ipc.WindowScale{Sub: 16, MinExp: -17, Buckets: 384}
	mid := func(b int) float64 { return math.Exp2(-17 + (float64(b)+0.5)/16) }
	bounds := []float64{0.1, 1}
	src := snapshot{apps: []supervisor.AppStatus{{ID: "node", Workers: []supervisor.WorkerStatus{
		{Index: 0, PID: os.Getpid(), State: "ready", HeapTotal: 1,
			Requests: &ipc.Histogram{Bounds: bounds, Window: scale, Series: []ipc.HistogramSeries{
				// 1000 in the window: 500 in bucket 100, 489 in 150, 9 in
				// 200, 2 in 383 (the last, with what is above the scale).
				{Method: "GET", StatusCode: 200, Counts: []uint64{700, 300, 1}, Sum: 12.5, Window: []uint64{100, 500, 150, 489, 200, 9, 383, 2}},
				{Method: "GET", StatusCode: 404, Counts: []uint64{3, 0, 0}, Sum: 0.01, Window: []uint64{}},
				{Method: "POST", StatusCode: 200, Counts: []uint64{1, 0, 0}, Sum: 0.01, Window: []uint64{5, 1, 4, 1}}, // out of order
				{Method: "POST", StatusCode: 201, Counts: []uint64{1, 0, 0}, Sum: 0.01, Window: []uint64{384, 1}},     // past the scale
				{Method: "POST", StatusCode: 202, Counts: []uint64{1, 0, 0}, Sum: 0.01, Window: []uint64{5}},          // odd
				{Method: "PUT", StatusCode: 200, Counts: []uint64{1, 0}, Sum: 0.01, Window: []uint64{5, 1}},           // counts do not match the bounds
			}}}}}}}
	f := gather(t, src)["http_request_all_summary_seconds"]
	if f == nil || len(f.GetMetric()) != 2 {
		t.Fatalf("summary series: %v, want GET 200 and GET 404", f)
	}
	for _, m := range f.GetMetric() {
		s := m.GetSummary()
		switch labelValue(m, "status_code") {
		case "200":
			if s.GetSampleCount() != 1001 || s.GetSampleSum() != 12.5 || labelValue(m, "workerId") != "0" || labelValue(m, "method") != "GET" {
				t.Errorf("GET 200: count %d sum %v labels %v", s.GetSampleCount(), s.GetSampleSum(), m.GetLabel())
			}
			want := map[float64]float64{0.01: mid(100), 0.05: mid(100), 0.5: mid(100), 0.9: mid(150), 0.95: mid(150), 0.99: mid(200), 0.999: mid(383)}
			if len(s.GetQuantile()) != len(want) {
				t.Errorf("GET 200 quantiles %v", s.GetQuantile())
			}
			for _, q := range s.GetQuantile() {
				if w, ok := want[q.GetQuantile()]; !ok || q.GetValue() != w {
					t.Errorf("GET 200 quantile %v = %v, want %v", q.GetQuantile(), q.GetValue(), w)
				}
			}
		case "404":
			for _, q := range s.GetQuantile() {
				if !math.IsNaN(q.GetValue()) {
					t.Errorf("GET 404 with an empty window: quantile %v = %v, want NaN", q.GetQuantile(), q.GetValue())
				}
			}
			if s.GetSampleCount() != 3 {
				t.Errorf("GET 404 count %d, want 3 (since start)", s.GetSampleCount())
			}
		default:
			t.Errorf("unexpected series %v", m.GetLabel())
		}
	}

	// A scale past the protocol's bounds: no summary, the histogram stays.
	src.apps[0].Workers[0].Requests.Window = &ipc.WindowScale{Sub: 16, MinExp: -17, Buckets: 1 << 20}
	fams := gather(t, src)
	if f := fams["http_request_all_summary_seconds"]; f != nil {
		t.Errorf("summary from a window of 2^20 buckets: %v", f)
	}
	if f := fams["http_request_all_duration_seconds"]; f == nil || len(f.GetMetric()) != 5 {
		t.Errorf("the histogram should stay: %v", f)
	}
}
