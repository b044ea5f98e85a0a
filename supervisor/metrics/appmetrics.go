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
)

// The metrics an app registers in its own prom-client registry (Watt's
// globalThis.platformatic.prometheus.registry) arrive as Prometheus text
// in its workers' stats reports; at each scrape they are parsed and merged
// into the endpoint's output: every series gets the applicationId and
// workerId labels (and the configured extra labels), the families of all
// workers with the same name become one, and a name wattd exports itself
// stays wattd's. A worker whose text does not parse, or whose family
// contradicts another worker's, loses that text or family for the scrape,
// with a warning at most once a minute per worker; the scrape goes on.

// workerText is one worker's app metrics, as it last reported them.
type workerText struct {
	app    string
	worker int
	text   string
}

// warnEvery bounds how often one worker's bad metrics are logged.
const warnEvery = time.Minute

// appMerger merges the app metrics; it remembers when it last warned
// about each worker.
type appMerger struct {
	log         *zap.Logger
	appLabel    string // the application label's name
	constLabels prometheus.Labels

	mu     sync.Mutex // guards warned
	warned map[string]time.Time
}

func newAppMerger(log *zap.Logger, appLabelName string, constLabels prometheus.Labels) *appMerger {
	return &appMerger{log: log, appLabel: appLabelName, constLabels: constLabels, warned: map[string]time.Time{}}
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
	taken := map[string]bool{}
	for _, f := range own {
		for _, n := range sampleNames(f) {
			taken[n] = true
		}
	}
	ours := []string{m.appLabel, workerLabel}
	for k := range m.constLabels {
		ours = append(ours, k)
	}
	merged := map[string]*dto.MetricFamily{}
	var order []string
	for _, w := range texts {
		var p expfmt.TextParser
		fams, err := p.TextToMetricFamilies(strings.NewReader(w.text))
		if err != nil {
			m.warn(w, "the app's metrics do not parse; leaving them out", err)
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
			if prev, ok := merged[name]; ok {
				if prev.GetType() != f.GetType() {
					m.warn(w, "an app metric has another type in another worker; leaving it out",
						fmt.Errorf("%s is a %s there and a %s here", name, prev.GetType(), f.GetType()))
					continue
				}
			} else {
				clash := false
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
