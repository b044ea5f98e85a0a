package metrics

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

func TestWantsJSON(t *testing.T) {
	cases := []struct {
		accept []string
		want   bool
	}{
		{nil, false},
		{[]string{"application/json"}, true},
		{[]string{"Application/JSON; charset=utf-8"}, true},
		{[]string{"application/*"}, true},
		{[]string{"application/json, text/plain"}, false},
		{[]string{"application/json", "text/plain"}, false},
		{[]string{"application/json, text/plain;q=0"}, true},
		{[]string{"application/json, text/*;q=0"}, true},
		{[]string{"application/json, */*;q=0.1"}, false},
		{[]string{"*/*"}, false},
		{[]string{"application/json;q=0"}, false},
		{[]string{"application/json, */*;q=0"}, true},
		{[]string{"text/plain;version=0.0.4;q=0.5,*/*;q=0.1"}, false},
		{[]string{"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3"}, false},
		{[]string{"garbage"}, false},
		{[]string{""}, false},
	}
	for _, c := range cases {
		if got := wantsJSON(c.accept); got != c.want {
			t.Errorf("wantsJSON(%q) = %v, want %v", c.accept, got, c.want)
		}
	}
}

func TestJSONForm(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jobs_total", Help: "jobs done"}, []string{"app", "workerId", "status_code"})
	c.WithLabelValues("web", "1", "200").Add(3)
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "temp", Help: "temperature"})
	g.Set(math.NaN())
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "dur_seconds", Help: "durations", Buckets: []float64{0.1, 1}})
	h.Observe(0.05)
	h.Observe(0.5)
	h.Observe(5)
	s := prometheus.NewSummary(prometheus.SummaryOpts{Name: "size_bytes", Help: "sizes", Objectives: map[float64]float64{0.5: 0.05}})
	s.Observe(10)
	// prom-client sets nodejs_version_info's parts as numbers; a label of
	// the same name elsewhere stays text.
	v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nodejs_version_info", Help: "version"}, []string{"version", "major", "minor", "patch"})
	v.WithLabelValues("v24.11.1", "24", "11", "1").Set(1)
	r := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "release_info", Help: "release"}, []string{"major"})
	r.WithLabelValues("3").Set(1)
	reg.MustRegister(c, g, h, s, v, r)

	text := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	srv := httptest.NewServer(jsonOrText(reg, text, zap.NewNop()))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") || !strings.Contains(resp.Header.Get("Vary"), "Accept") {
		t.Errorf("Content-Type %q, Vary %q", ct, resp.Header.Get("Vary"))
	}
	var got []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(got)
	want := `[` +
		`{"aggregator":"sum","help":"durations","name":"dur_seconds","type":"histogram","values":[` +
		`{"labels":{"le":0.1},"metricName":"dur_seconds_bucket","value":1},` +
		`{"labels":{"le":1},"metricName":"dur_seconds_bucket","value":2},` +
		`{"labels":{"le":"+Inf"},"metricName":"dur_seconds_bucket","value":3},` +
		`{"labels":{},"metricName":"dur_seconds_sum","value":5.55},` +
		`{"labels":{},"metricName":"dur_seconds_count","value":3}]},` +
		`{"aggregator":"sum","help":"jobs done","name":"jobs_total","type":"counter","values":[{"labels":{"app":"web","status_code":200,"workerId":1},"value":3}]},` +
		`{"aggregator":"sum","help":"version","name":"nodejs_version_info","type":"gauge","values":[{"labels":{"major":24,"minor":11,"patch":1,"version":"v24.11.1"},"value":1}]},` +
		`{"aggregator":"sum","help":"release","name":"release_info","type":"gauge","values":[{"labels":{"major":"3"},"value":1}]},` +
		`{"aggregator":"sum","help":"sizes","name":"size_bytes","type":"summary","values":[` +
		`{"labels":{"quantile":0.5},"value":10},` +
		`{"labels":{},"metricName":"size_bytes_sum","value":10},` +
		`{"labels":{},"metricName":"size_bytes_count","value":1}]},` +
		`{"aggregator":"sum","help":"temperature","name":"temp","type":"gauge","values":[{"labels":{},"value":null}]}]`
	if string(b) != want {
		t.Errorf("JSON form:\n%s\nwant\n%s", b, want)
	}

	// Any other Accept gets the text form.
	resp2, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if ct := resp2.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("without Accept: Content-Type %q, want the text form", ct)
	}
}
