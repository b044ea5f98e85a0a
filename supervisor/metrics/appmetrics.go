package metrics

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"go.uber.org/zap"

	"github.com/wattd/wattd/ipc"
)

// The metrics an app registers in its own prom-client registry (Watt's
// globalThis.platformatic.prometheus.registry) arrive as Prometheus text
// in its workers' stats reports; at each scrape they are parsed and merged
// into the endpoint's output: every series gets the applicationId and
// workerId labels (and the configured extra labels), the families of all
// workers with the same name become one, and a name wattd exports itself
// (any of its families, whether or not a scrape has series of it, and any
// name under the wattd_ prefix) stays wattd's. A worker whose text does not
// parse or is over maxAppText, or whose family has another type than most
// workers give that name, loses that text or family for the scrape, with a
// warning at most once a minute per worker; the scrape goes on.

// workerText is one worker's app metrics, as it last reported them.
type workerText struct {
	app    string
	worker int
	text   string
}

// warnEvery bounds how often one worker's bad metrics are logged.
const warnEvery = time.Minute

// maxAppText is the most text of one worker's app metrics wattd parses,
// the bound the Node preload (control.cjs) and the Go SDK keep to; a
// worker that sends more is not following the protocol.
const maxAppText = ipc.MaxAppMetrics

// ownPrefix is the prefix of wattd's own metric names; apps may not use it.
const ownPrefix = "wattd_"

// appMerger merges the app metrics; it remembers when it last warned
// about each worker.
type appMerger struct {
	log         *zap.Logger
	appLabel    string // the application label's name
	constLabels prometheus.Labels
	// reserved are the sample names of every family wattd exports (each
	// name also with _bucket, _sum and _count, whatever its type).
	reserved map[string]bool

	mu     sync.Mutex // guards warned
	warned map[string]time.Time
}

// newAppMerger makes the merger; own are the names of the families wattd
// exports.
func newAppMerger(log *zap.Logger, appLabelName string, constLabels prometheus.Labels, own []string) *appMerger {
	reserved := map[string]bool{}
	for _, n := range own {
		for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
			reserved[n+suffix] = true
		}
	}
	return &appMerger{log: log, appLabel: appLabelName, constLabels: constLabels, reserved: reserved, warned: map[string]time.Time{}}
}

func (m *appMerger) warn(w workerText, msg string, err error) {
	key := w.app + "\x00" + strconv.Itoa(w.worker)
	now := time.Now()
	m.mu.Lock()
	last, ok := m.warned[key]
	if !ok || now.Sub(last) >= warnEvery {
		m.warned[key] = now
	}
	m.mu.Unlock()
	if ok && now.Sub(last) < warnEvery {
		return
	}
	m.log.Warn(msg, zap.String("app", w.app), zap.Int("worker", w.worker), zap.Error(err))
}

// sampleNames are the names of the samples a family puts in the text
// format: a histogram's or summary's name also with _bucket, _sum and
// _count.
func sampleNames(f *dto.MetricFamily) []string {
	n := f.GetName()
	switch f.GetType() {
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		return []string{n, n + "_bucket", n + "_sum", n + "_count"}
	case dto.MetricType_SUMMARY:
		return []string{n, n + "_sum", n + "_count"}
	}
	return []string{n}
}

// merge returns own followed by the app families of texts, merged and
// labelled; own is not changed.
func (m *appMerger) merge(own []*dto.MetricFamily, texts []workerText) []*dto.MetricFamily {
	if len(texts) == 0 {
		return own
	}
	taken := maps.Clone(m.reserved)
	for _, f := range own {
		for _, n := range sampleNames(f) {
			taken[n] = true
		}
	}
	ours := []string{m.appLabel, workerLabel}
	for k := range m.constLabels {
		ours = append(ours, k)
	}
	// Parse every worker's text first: a name's type is the one most
	// workers give it (the first worker's, on a tie), so that one worker
	// cannot take another app's family away by coming first.
	parsed := make([]map[string]*dto.MetricFamily, len(texts))
	votes := map[string]map[dto.MetricType]int{}
	firstType := map[string]dto.MetricType{}
	for i, w := range texts {
		if len(w.text) > maxAppText {
			m.warn(w, "the app's metrics are over the size wattd takes; leaving them out",
				fmt.Errorf("%d bytes, over %d", len(w.text), maxAppText))
			continue
		}
		var p expfmt.TextParser
		fams, err := p.TextToMetricFamilies(strings.NewReader(w.text))
		if err != nil {
			m.warn(w, "the app's metrics do not parse; leaving them out", err)
			continue
		}
		parsed[i] = fams
		for name, f := range fams {
			if len(f.GetMetric()) == 0 {
				continue
			}
			if votes[name] == nil {
				votes[name] = map[dto.MetricType]int{}
				firstType[name] = f.GetType()
			}
			votes[name][f.GetType()]++
		}
	}
	winner := func(name string) dto.MetricType {
		best := firstType[name]
		for t, n := range votes[name] {
			if n > votes[name][best] {
				best = t
			}
		}
		return best
	}
	merged := map[string]*dto.MetricFamily{}
	var order []string
	for i, w := range texts {
		fams := parsed[i]
		if fams == nil {
			continue
		}
		added := []*dto.LabelPair{
			{Name: strPtr(m.appLabel), Value: strPtr(w.app)},
			{Name: strPtr(workerLabel), Value: strPtr(strconv.Itoa(w.worker))},
		}
		for k, v := range m.constLabels {
			added = append(added, &dto.LabelPair{Name: strPtr(k), Value: strPtr(v)})
		}
		for _, name := range slices.Sorted(maps.Keys(fams)) {
			f := fams[name]
			if len(f.GetMetric()) == 0 {
				continue // a labelled metric nothing was recorded for yet
			}
			if want := winner(name); f.GetType() != want {
				m.warn(w, "an app metric has another type than most workers give it; leaving it out",
					fmt.Errorf("%s is a %s in most workers and a %s here", name, want, f.GetType()))
				continue
			}
			if _, ok := merged[name]; !ok {
				clash := strings.HasPrefix(name, ownPrefix)
				for _, n := range sampleNames(f) {
					clash = clash || taken[n]
				}
				if clash {
					m.warn(w, "an app metric has the name of one wattd exports; leaving it out", fmt.Errorf("%s", name))
					continue
				}
				for _, n := range sampleNames(f) {
					taken[n] = true
				}
				merged[name] = &dto.MetricFamily{Name: f.Name, Help: f.Help, Type: f.Type, Unit: f.Unit}
				order = append(order, name)
			}
			dst := merged[name]
			seen := map[string]bool{}
			for _, s := range f.GetMetric() {
				s.Label = relabel(s.GetLabel(), ours, added)
				s.TimestampMs = nil // reports are seconds old; the scrape is the time
				key := labelKey(s.GetLabel())
				if seen[key] {
					continue // the parser lets a repeated series through
				}
				seen[key] = true
				dedupePoints(s)
				dst.Metric = append(dst.Metric, s)
			}
		}
	}
	out := slices.Clone(own)
	slices.Sort(order)
	for _, name := range order {
		out = append(out, merged[name])
	}
	return out
}

// dedupePoints keeps the first of a histogram's buckets with the same
// upper bound and of a summary's quantiles with the same rank: the parser
// lets repeated lines through, and a scraper would count them twice.
func dedupePoints(s *dto.Metric) {
	if h := s.GetHistogram(); h != nil {
		h.Bucket = firstOfEach(h.Bucket, (*dto.Bucket).GetUpperBound)
	}
	if sm := s.GetSummary(); sm != nil {
		sm.Quantile = firstOfEach(sm.Quantile, (*dto.Quantile).GetQuantile)
	}
}

// firstOfEach keeps the first element of xs of each key.
func firstOfEach[T any](xs []T, key func(T) float64) []T {
	seen := map[float64]bool{}
	return slices.DeleteFunc(xs, func(x T) bool {
		k := key(x)
		dup := seen[k]
		seen[k] = true
		return dup
	})
}

// relabel drops the app's own labels that wattd sets (its value would
// contradict wattd's) and adds wattd's, sorted by name.
func relabel(labels []*dto.LabelPair, ours []string, added []*dto.LabelPair) []*dto.LabelPair {
	out := make([]*dto.LabelPair, 0, len(labels)+len(added))
	for _, l := range labels {
		if !slices.Contains(ours, l.GetName()) {
			out = append(out, l)
		}
	}
	out = append(out, added...)
	slices.SortFunc(out, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out
}

func labelKey(labels []*dto.LabelPair) string {
	var b strings.Builder
	for _, l := range labels {
		b.WriteString(l.GetName())
		b.WriteByte(0)
		b.WriteString(l.GetValue())
		b.WriteByte(0)
	}
	return b.String()
}

// gatherer is the endpoint's: wattd's own families from reg, then the
// app metrics the collector saw while reg gathered them.
type gatherer struct {
	reg    prometheus.Gatherer
	c      *collector
	merger *appMerger
}

func (g gatherer) Gather() ([]*dto.MetricFamily, error) {
	fams, err := g.reg.Gather()
	var texts []workerText
	if p := g.c.appTexts.Load(); p != nil {
		texts = *p
	}
	return g.merger.merge(fams, texts), err
}

func strPtr(s string) *string { return &s }
