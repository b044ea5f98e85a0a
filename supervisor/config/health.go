package config

import (
	"encoding/json"
	"fmt"
	"time"
)

// Health is Watt's "health" block as it applies to one application: the
// runtime's block, overridden key by key by the application's own, over
// Watt's defaults. Path and Timeout are wattd's HTTP probe.
type Health struct {
	Enabled bool
	// Interval is the time between two checks of a worker; the first
	// check comes GracePeriod plus Interval after the worker became ready.
	Interval           time.Duration
	GracePeriod        time.Duration
	MaxUnhealthyChecks int // consecutive failed checks that make a worker unhealthy
	// MaxELU fails a check when the worker's event-loop utilisation is
	// above it. MaxHeapUsed fails it when the used heap is above that
	// fraction of MaxHeapTotal (bytes): Watt's reading of the two keys.
	MaxELU       float64
	MaxHeapUsed  float64
	MaxHeapTotal uint64
	// Path, when set, is probed with GET on each worker's own mesh
	// socket at every check; anything but a 2xx within Timeout fails it.
	Path    string
	Timeout time.Duration
}

// Watt's health defaults, from its runtime schema (@platformatic/foundation
// lib/schema.js, "health"), and wattd's for the probe.
const (
	DefaultHealthInterval     = 30 * time.Second
	DefaultHealthGracePeriod  = 30 * time.Second
	DefaultMaxUnhealthyChecks = 10
	DefaultMaxELU             = 0.99
	DefaultMaxHeapUsed        = 0.99
	DefaultMaxHeapTotal       = 4 << 30
	DefaultHealthProbeTimeout = 5 * time.Second
	// MinHealthInterval bounds how often a worker is checked. Watt raises
	// anything below 1 s to 1 s; wattd's checks cost a lock and a
	// comparison (plus the probe, if any), so it allows faster ones.
	MinHealthInterval = 100 * time.Millisecond
)

// DefaultHealth is the health block of a file that has none.
func DefaultHealth() Health {
	return Health{
		Enabled:            true,
		Interval:           DefaultHealthInterval,
		GracePeriod:        DefaultHealthGracePeriod,
		MaxUnhealthyChecks: DefaultMaxUnhealthyChecks,
		MaxELU:             DefaultMaxELU,
		MaxHeapUsed:        DefaultMaxHeapUsed,
		MaxHeapTotal:       DefaultMaxHeapTotal,
		Timeout:            DefaultHealthProbeTimeout,
	}
}

// rawHealth is a "health" block as written; nil members are unset and
// leave the value below them (runtime block, default) in place.
type rawHealth struct {
	Enabled            *bool           `json:"enabled"`
	Interval           *json.Number    `json:"interval"`
	GracePeriod        *json.Number    `json:"gracePeriod"`
	MaxUnhealthyChecks *json.Number    `json:"maxUnhealthyChecks"`
	MaxELU             *json.Number    `json:"maxELU"`
	MaxHeapUsed        *json.Number    `json:"maxHeapUsed"`
	MaxHeapTotal       json.RawMessage `json:"maxHeapTotal"`
	Path               *string         `json:"path"`
	Timeout            *json.Number    `json:"timeout"`
}

// overlayHealth applies the keys r sets on h; ptr is the block's pointer, for
// problems and warnings.
func (l *loader) overlayHealth(h Health, r *rawHealth, ptr string) (Health, []issue) {
	if r == nil {
		return h, nil
	}
	var problems []issue
	if r.Enabled != nil {
		h.Enabled = *r.Enabled
	}
	if r.Interval != nil {
		h.Interval = msDuration(r.Interval, h.Interval)
		if h.Interval < MinHealthInterval {
			l.warnings = append(l.warnings, issuef(ptr+"/interval",
				"health interval %s is below the minimum; %s is used", h.Interval, MinHealthInterval))
			h.Interval = MinHealthInterval
		}
	}
	h.GracePeriod = msDuration(r.GracePeriod, h.GracePeriod)
	h.MaxUnhealthyChecks = intOr(r.MaxUnhealthyChecks, h.MaxUnhealthyChecks)
	h.MaxELU = floatOr(r.MaxELU, h.MaxELU)
	h.MaxHeapUsed = floatOr(r.MaxHeapUsed, h.MaxHeapUsed)
	if len(r.MaxHeapTotal) > 0 {
		n, err := heapSize(r.MaxHeapTotal)
		if err != nil {
			problems = append(problems, issuef(ptr+"/maxHeapTotal", "%s", err))
		} else {
			h.MaxHeapTotal = n
		}
	}
	if r.Path != nil {
		h.Path = *r.Path
	}
	h.Timeout = msDuration(r.Timeout, h.Timeout)
	return h, problems
}

// heapSizeForm is Watt's memory size: a number and a unit of 1024 (b, kb,
// mb, gb, any case, a space allowed between). wattd also takes the
// binary spellings (KiB, MiB, GiB), the bare initials, and a plain number
// of bytes.
// heapSize reads maxHeapTotal: a number of bytes or a size string, with
// the units of every size in watt.json (parseSize).
func heapSize(raw json.RawMessage) (uint64, error) {
	n, msg := parseSize(raw)
	if msg == "" && n < 1 {
		msg = "expected a positive size"
	}
	if msg != "" {
		return 0, fmt.Errorf("maxHeapTotal: %s", msg)
	}
	return uint64(n), nil
}

func floatOr(n *json.Number, def float64) float64 {
	if n == nil {
		return def
	}
	f, err := n.Float64()
	if err != nil {
		return def
	}
	return f
}
