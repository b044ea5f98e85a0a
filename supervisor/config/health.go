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
	// MaxEventLoopDelay fails a check when the longest event-loop delay
	// the worker sampled since the previous check is above it, and
	// MaxEventLoopDelayP99 when the highest p99 of its stats periods
	// since then is; 0 judges neither (Watt's keys, in ms in the file).
	MaxEventLoopDelay    time.Duration
	MaxEventLoopDelayP99 time.Duration
	// HeapSet is true when a health block of the application (the
	// runtime's or its own) wrote maxHeapTotal; MaxYoungGeneration is the
	// young generation's size in bytes when one wrote it, else 0. Written,
	// they size the worker's V8 heap (HeapFlags), as Watt sizes its
	// threads'.
	HeapSet            bool
	MaxYoungGeneration uint64
	// BufferPoolSize (Buffer.poolSize) and HighWaterMark (the streams'
	// default highWaterMark, bytes) are set in a Node.js worker when a
	// health block wrote them (Watt's bufferPoolSize and
	// defaultHighWaterMark); 0 leaves Node.js's own.
	BufferPoolSize uint64
	HighWaterMark  uint64
	// MaxUnresponsive (wattd only): a ready worker that has reported
	// stats before and sent none for this long is replaced at once,
	// without waiting for GracePeriod or MaxUnhealthyChecks: its event
	// loop is stuck or the process is stopped, and the connections the
	// kernel queues on its socket wait. 0 turns it off.
	MaxUnresponsive time.Duration
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
	// DefaultMaxYoungGeneration is Watt's young generation, taken out of
	// maxHeapTotal for the old generation when only that is written.
	DefaultMaxYoungGeneration = 128 << 20
	DefaultHealthProbeTimeout = 5 * time.Second
	// DefaultMaxUnresponsive is wattd's: as long as Kubernetes' default
	// liveness probe takes to give up (3 failures 10 s apart), where
	// Watt's interval and maxUnhealthyChecks take over five minutes.
	DefaultMaxUnresponsive = 30 * time.Second
	// MinMaxUnresponsive bounds it from below: a worker's stats period
	// is a third of it, and shorter periods would cost every worker more
	// than they tell.
	MinMaxUnresponsive = 300 * time.Millisecond
	// MinHealthInterval bounds how often a worker is checked. Watt raises
	// anything below 1 s to 1 s; wattd's checks cost a lock and a
	// comparison (plus the probe, if any), so it allows faster ones.
	MinHealthInterval = 100 * time.Millisecond
)

// maxStreamSize bounds bufferPoolSize and defaultHighWaterMark.
const maxStreamSize = 1 << 30

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
		MaxUnresponsive:    DefaultMaxUnresponsive,
	}
}

// rawHealth is a "health" block as written; nil members are unset and
// leave the value below them (runtime block, default) in place.
type rawHealth struct {
	Enabled              *bool           `json:"enabled"`
	Interval             *json.Number    `json:"interval"`
	GracePeriod          *json.Number    `json:"gracePeriod"`
	MaxUnhealthyChecks   *json.Number    `json:"maxUnhealthyChecks"`
	MaxELU               *json.Number    `json:"maxELU"`
	MaxHeapUsed          *json.Number    `json:"maxHeapUsed"`
	MaxEventLoopDelay    *json.Number    `json:"maxEventLoopDelay"`
	MaxEventLoopDelayP99 *json.Number    `json:"maxEventLoopDelayP99"`
	MaxHeapTotal         json.RawMessage `json:"maxHeapTotal"`
	MaxYoungGeneration   json.RawMessage `json:"maxYoungGeneration"`
	BufferPoolSize       json.RawMessage `json:"bufferPoolSize"`
	HighWaterMark        json.RawMessage `json:"defaultHighWaterMark"`
	Path                 *string         `json:"path"`
	Timeout              *json.Number    `json:"timeout"`
	MaxUnresponsive      *json.Number    `json:"maxUnresponsive"`
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
		h.Interval = l.ms(ptr+"/interval", r.Interval, h.Interval)
		if h.Interval < MinHealthInterval {
			l.warnings = append(l.warnings, issuef(ptr+"/interval",
				"health interval %s is below the minimum; %s is used", h.Interval, MinHealthInterval))
			h.Interval = MinHealthInterval
		}
	}
	h.GracePeriod = l.ms(ptr+"/gracePeriod", r.GracePeriod, h.GracePeriod)
	h.MaxUnhealthyChecks = intOr(r.MaxUnhealthyChecks, h.MaxUnhealthyChecks)
	h.MaxELU = floatOr(r.MaxELU, h.MaxELU)
	h.MaxHeapUsed = floatOr(r.MaxHeapUsed, h.MaxHeapUsed)
	h.MaxEventLoopDelay = l.ms(ptr+"/maxEventLoopDelay", r.MaxEventLoopDelay, h.MaxEventLoopDelay)
	h.MaxEventLoopDelayP99 = l.ms(ptr+"/maxEventLoopDelayP99", r.MaxEventLoopDelayP99, h.MaxEventLoopDelayP99)
	// The sizes, in bytes or size strings. least is the smallest accepted
	// (maxYoungGeneration's 0 is Watt's "not set"); bounded ones take at
	// most maxStreamSize: a larger buffer pool or highWaterMark would have
	// Node.js allocate that much for the app's first small Buffer, or fail
	// to.
	for _, sz := range []struct {
		key     string
		raw     json.RawMessage
		to      *uint64
		least   int64
		bounded bool
		set     *bool // set to true when the key is written
	}{
		{"maxHeapTotal", r.MaxHeapTotal, &h.MaxHeapTotal, 1, false, &h.HeapSet},
		{"maxYoungGeneration", r.MaxYoungGeneration, &h.MaxYoungGeneration, 0, false, nil},
		{"bufferPoolSize", r.BufferPoolSize, &h.BufferPoolSize, 1, true, nil},
		{"defaultHighWaterMark", r.HighWaterMark, &h.HighWaterMark, 1, true, nil},
	} {
		if len(sz.raw) == 0 {
			continue
		}
		n, err := heapSize(sz.key, sz.raw, sz.least)
		switch {
		case err != nil:
			problems = append(problems, issuef(ptr+"/"+sz.key, "%s", err))
		case sz.bounded && n > maxStreamSize:
			problems = append(problems, issuef(ptr+"/"+sz.key, "%s: expected at most 1GB, got %s", sz.key, formatSize(int64(n))))
		default:
			*sz.to = n
			if sz.set != nil {
				*sz.set = true
			}
		}
	}
	if r.Path != nil {
		h.Path = *r.Path
	}
	h.Timeout = l.ms(ptr+"/timeout", r.Timeout, h.Timeout)
	h.MaxUnresponsive = l.ms(ptr+"/maxUnresponsive", r.MaxUnresponsive, h.MaxUnresponsive)
	if h.MaxUnresponsive > 0 && h.MaxUnresponsive < MinMaxUnresponsive {
		l.warnings = append(l.warnings, issuef(ptr+"/maxUnresponsive",
			"maxUnresponsive %s is below the minimum; %s is used", h.MaxUnresponsive, MinMaxUnresponsive))
		h.MaxUnresponsive = MinMaxUnresponsive
	}
	return h, problems
}

// heapSize reads the size key: a number of bytes or a size string, with
// the units of every size in watt.json (parseSize: Watt's number and unit
// of 1024, b, kb, mb, gb in any case with an optional space, plus the
// binary spellings KiB, MiB, GiB and the bare initials), at least least.
func heapSize(key string, raw json.RawMessage, least int64) (uint64, error) {
	n, msg := parseSize(raw)
	if msg == "" && n < least {
		msg = "expected a positive size"
		if least == 0 {
			msg = "expected a size of 0 or more"
		}
	}
	if msg != "" {
		return 0, fmt.Errorf("%s: %s", key, msg)
	}
	return uint64(n), nil
}

// HeapFlags are the V8 flags that size a Node.js worker's heap from the
// health keys an application's config wrote, as Watt sizes each worker
// thread's: the old generation gets maxHeapTotal less the young
// generation (maxYoungGeneration, else Watt's 128 MiB), but no less than
// the smaller of the two, and the young
// generation maxYoungGeneration, of which V8 makes three semi-spaces.
// Nothing when neither key was written: Node.js then sizes the heap from
// the machine's or the container's memory, where Watt's 4 GiB default
// could let a worker outgrow a small container.
func (h Health) HeapFlags() []string {
	var out []string
	if h.HeapSet {
		young := h.MaxYoungGeneration
		if young == 0 {
			young = DefaultMaxYoungGeneration
		}
		// Never less than the smaller of the total and the young
		// generation: the plain difference would give a total just above
		// the young generation (129MB against 128 MiB) a 1 MiB old space,
		// in which no Node.js starts, where 128MB gives 128: a larger
		// total never gives a smaller heap.
		total := h.MaxHeapTotal
		old := max(total-min(total, young), min(total, young))
		out = append(out, fmt.Sprintf("--max-old-space-size=%d", max(1, old>>20)))
	}
	if h.MaxYoungGeneration > 0 {
		out = append(out, fmt.Sprintf("--max-semi-space-size=%d", max(1, h.MaxYoungGeneration/3>>20)))
	}
	return out
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

// JudgesDelay tells whether checks judge the event-loop delay, which the
// worker then samples.
func (h Health) JudgesDelay() bool {
	return h.Enabled && (h.MaxEventLoopDelay > 0 || h.MaxEventLoopDelayP99 > 0)
}
