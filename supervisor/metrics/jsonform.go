package metrics

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
)

// The JSON form of the metrics endpoint. Watt's metrics server answers
// with JSON, not the text format, when the request's Accept header takes
// application/json and does not take text/plain; the JSON is an array of
// metrics in the shape prom-client's getMetricsAsJSON gives: name, help,
// type, aggregator and values, each value its labels and number, and, for
// the series of a histogram or summary other than its buckets or
// quantiles, the series' own name in metricName (x_sum, x_count). wattd
// writes one entry per metric, with the series of every worker in it, where
// Watt writes one per worker; a reader that looks a metric up by name
// finds all its series.

// jsonMetric is one metric of the JSON form.
type jsonMetric struct {
	Name       string      `json:"name"`
	Help       string      `json:"help"`
	Type       string      `json:"type"`
	Values     []jsonValue `json:"values"`
	Aggregator string      `json:"aggregator"`
}

// jsonValue is one series of a jsonMetric.
type jsonValue struct {
	Value      jsonNumber     `json:"value"`
	Labels     map[string]any `json:"labels"`
	MetricName string         `json:"metricName,omitempty"`
}

// jsonNumber writes NaN and the infinities as null, as JSON.stringify
// does; JSON has no other way to say them.
type jsonNumber float64

func (n jsonNumber) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

// wantsJSON reports whether a request with these Accept header values is
// to get the JSON form: Watt's rule, application/json acceptable and
// text/plain not. Without an Accept header, everything is acceptable.
func wantsJSON(accept []string) bool {
	return acceptable(accept, "application", "json") && !acceptable(accept, "text", "plain")
}

// acceptable reports whether the media type typ/sub is acceptable by the
// Accept header values: the most specific range that matches it (exact,
// then typ/*, then */*) has a q above zero.
func acceptable(accept []string, typ, sub string) bool {
	if len(accept) == 0 {
		return true
	}
	best, bestQ := -1, 0.0
	for _, v := range accept {
		for part := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(part, ";")
			t, s, ok := strings.Cut(strings.TrimSpace(name), "/")
			if !ok {
				continue
			}
			var spec int
			switch {
			case strings.EqualFold(t, typ) && strings.EqualFold(s, sub):
				spec = 2
			case strings.EqualFold(t, typ) && s == "*":
				spec = 1
			case t == "*" && s == "*":
				spec = 0
			default:
				continue
			}
			q := 1.0
			for p := range strings.SplitSeq(params, ";") {
				if qs, ok := strings.CutPrefix(strings.TrimSpace(p), "q="); ok {
					if f, err := strconv.ParseFloat(qs, 64); err == nil {
						q = f
					}
				}
			}
			if spec > best {
				best, bestQ = spec, q
			}
		}
	}
	return best >= 0 && bestQ > 0
}

// jsonOrText answers a request that wants the JSON form (wantsJSON) with
// it, gathered from g, and hands any other to text.
func jsonOrText(g prometheus.Gatherer, text http.Handler, log *zap.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Accept")
		if !wantsJSON(r.Header.Values("Accept")) {
			text.ServeHTTP(w, r)
			return
		}
		fams, err := g.Gather()
		if err != nil {
			// As the text form does (ContinueOnError): what could be
			// gathered is served, the error logged.
			log.Warn("gathering metrics", zap.Error(err))
		}
		body, err := json.Marshal(jsonForm(fams))
		if err != nil {
			http.Error(w, "encode metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method != http.MethodHead {
			_, _ = w.Write(body)
		}
	})
}

// jsonForm converts gathered metrics to the JSON form.
func jsonForm(fams []*dto.MetricFamily) []jsonMetric {
	out := make([]jsonMetric, 0, len(fams))
	for _, f := range fams {
		m := jsonMetric{Name: f.GetName(), Help: f.GetHelp(), Aggregator: "sum", Values: []jsonValue{}}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			m.Type = "counter"
		case dto.MetricType_GAUGE:
			m.Type = "gauge"
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			m.Type = "histogram"
		case dto.MetricType_SUMMARY:
			m.Type = "summary"
		default:
			m.Type = "untyped"
		}
		for _, s := range f.GetMetric() {
			m.Values = append(m.Values, jsonValues(m.Name, s)...)
		}
		out = append(out, m)
	}
	return out
}

// jsonValues gives the series of one labelled metric: one for a counter,
// gauge or untyped metric; the buckets (with le), sum and count of a
// histogram; the quantiles, sum and count of a summary.
func jsonValues(name string, s *dto.Metric) []jsonValue {
	labels := func(extra string, v any) map[string]any {
		l := make(map[string]any, len(s.GetLabel())+1)
		for _, p := range s.GetLabel() {
			l[p.GetName()] = jsonLabel(name, p.GetName(), p.GetValue())
		}
		if extra != "" {
			l[extra] = v
		}
		return l
	}
	switch {
	case s.Counter != nil:
		return []jsonValue{{Value: jsonNumber(s.Counter.GetValue()), Labels: labels("", nil)}}
	case s.Gauge != nil:
		return []jsonValue{{Value: jsonNumber(s.Gauge.GetValue()), Labels: labels("", nil)}}
	case s.Histogram != nil:
		h := s.Histogram
		var out []jsonValue
		inf := false
		for _, b := range h.GetBucket() {
			var le any = b.GetUpperBound()
			if math.IsInf(b.GetUpperBound(), 1) {
				le, inf = "+Inf", true
			}
			out = append(out, jsonValue{Value: jsonNumber(b.GetCumulativeCount()), Labels: labels("le", le), MetricName: name + "_bucket"})
		}
		if !inf {
			out = append(out, jsonValue{Value: jsonNumber(h.GetSampleCount()), Labels: labels("le", "+Inf"), MetricName: name + "_bucket"})
		}
		return append(out,
			jsonValue{Value: jsonNumber(h.GetSampleSum()), Labels: labels("", nil), MetricName: name + "_sum"},
			jsonValue{Value: jsonNumber(h.GetSampleCount()), Labels: labels("", nil), MetricName: name + "_count"})
	case s.Summary != nil:
		sm := s.Summary
		var out []jsonValue
		for _, q := range sm.GetQuantile() {
			out = append(out, jsonValue{Value: jsonNumber(q.GetValue()), Labels: labels("quantile", q.GetQuantile())})
		}
		return append(out,
			jsonValue{Value: jsonNumber(sm.GetSampleSum()), Labels: labels("", nil), MetricName: name + "_sum"},
			jsonValue{Value: jsonNumber(float64(sm.GetSampleCount())), Labels: labels("", nil), MetricName: name + "_count"})
	case s.Untyped != nil:
		return []jsonValue{{Value: jsonNumber(s.Untyped.GetValue()), Labels: labels("", nil)}}
	}
	return nil
}

// numericLabels are the labels whose values Watt's JSON gives as numbers
// (its code sets them as numbers): a reader may compare them with ===.
// versionLabels are those of nodejs_version_info, which prom-client sets
// as numbers too.
var (
	numericLabels = map[string]bool{"workerId": true, "status_code": true}
	versionLabels = map[string]bool{"major": true, "minor": true, "patch": true}
)

// jsonLabel is the value of a metric's label in the JSON form: a number
// for the numeric labels when it is one, else the text.
func jsonLabel(metric, name, v string) any {
	if numericLabels[name] || metric == "nodejs_version_info" && versionLabels[name] {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return v
}
