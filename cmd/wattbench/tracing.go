package main

// The tracing scenario: what tracing costs the hello app under wattd.
// wattd runs the hello fixture twice per round, with the same watt.json but
// for a "telemetry" key: off (no key) and on (every request traced, the
// Watt default of 100% sampling, request ids with it), exporting over
// OTLP/HTTP to a sink in this process that reads and discards what it gets.
// The two run side by side and take the load in turns (pair.go), the
// first turn going to each in every other round. The summary is the ratio of
// requests/s on to off per round: its median and its range.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// tracingVariants are the two runs of a round, as runRecord.Target.
var tracingVariants = []string{"tracing-off", "tracing-on"}

// otlpSink is an OTLP/HTTP endpoint that accepts every export and keeps
// only counts, so that exporting costs wattd what it would against a real
// collector on the same machine, and nothing is stored.
type otlpSink struct {
	url     string
	exports atomic.Int64
	bytes   atomic.Int64
}

var (
	sinkOnce sync.Once
	sink     *otlpSink
	sinkErr  error
)

// startSink starts the sink once; it lives as long as the bench.
func startSink() (*otlpSink, error) {
	sinkOnce.Do(func() {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			sinkErr = fmt.Errorf("tracing sink: %w", err)
			return
		}
		s := &otlpSink{url: "http://" + l.Addr().String() + "/v1/traces"}
		mux := http.NewServeMux()
		mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, r *http.Request) {
			n, _ := io.Copy(io.Discard, r.Body)
			s.exports.Add(1)
			s.bytes.Add(n)
			// An empty ExportTraceServiceResponse is zero bytes of protobuf.
			w.Header().Set("Content-Type", "application/x-protobuf")
			w.WriteHeader(http.StatusOK)
		})
		go (&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}).Serve(l)
		sink = s
	})
	return sink, sinkErr
}

// tracingProject writes the hello fixture's watt.json, with the app's path
// made absolute and, for "tracing-on", a telemetry key exporting to the
// sink, into its own directory under the bench's log directory.
func (b *bench) tracingProject(hello, variant string, s *otlpSink) (string, error) {
	dir := filepath.Join(b.logDir, variant)
	return dir, projectCopy(hello, dir, func(cfg, _ map[string]any) {
		if variant == "tracing-on" {
			cfg["telemetry"] = map[string]any{
				"applicationName": "hello",
				"exporter":        map[string]any{"type": "otlp", "options": map[string]any{"url": s.url}},
			}
		}
	})
}

// runTracing measures one round: the hello app under wattd with tracing
// off and on, paired (pair.go), side first taking the first slice. A
// tracing-on run whose spans never reached the sink is a failed run, not a
// cheap one.
func (b *bench) runTracing(ctx context.Context, wattd target, round, first int) []runRecord {
	sides := make([]*pairSide, len(tracingVariants))
	for i, variant := range tracingVariants {
		sides[i] = &pairSide{rec: runRecord{Target: variant, Scenario: "tracing", Round: round}}
	}
	s, err := startSink()
	for i, variant := range tracingVariants {
		if err != nil {
			break
		}
		var dir string
		dir, err = b.tracingProject(wattd.dir, variant, s)
		t := wattd
		t.name, t.dir, t.argv = variant, dir, wattdStart(wattd.argv[0], dir)
		sides[i].t = t
	}
	if err != nil {
		return failSides(ctx, sides, err)
	}
	// Exports that reach the sink while the "on" side is under load.
	var onExports atomic.Int64
	sides[1].during = func(ctx context.Context) {
		before := s.exports.Load()
		<-ctx.Done()
		onExports.Add(s.exports.Load() - before)
	}
	b.measurePair(ctx, sides, first)
	on := &sides[1].rec
	if on.Error == "" && onExports.Load() == 0 {
		on.Error = "no spans reached the OTLP sink: tracing was not on"
	}
	return sideRecords(sides)
}

// tracingSummary is the scenario's result: requests/s with tracing on
// divided by off, per round with both runs clean.
type tracingSummary struct {
	Ratios      []float64 `json:"ratios"`
	Median      float64   `json:"median"`
	Min         float64   `json:"min"`
	Max         float64   `json:"max"`
	OffRPS      float64   `json:"off_requests_per_s"` // medians
	OnRPS       float64   `json:"on_requests_per_s"`
	OffCPUPerUs float64   `json:"off_target_cpu_us_per_request"`
	OnCPUPerUs  float64   `json:"on_target_cpu_us_per_request"`
	Exports     int64     `json:"sink_exports"`
	ExportBytes int64     `json:"sink_bytes"`
	Goal        string    `json:"goal"`
	Result      string    `json:"result"`
}

const tracingGoal = 0.90 // on / off: at most 10% fewer requests/s

func summarizeTracing(records []runRecord) *tracingSummary {
	type pair struct{ off, on *runRecord }
	rounds := map[int]*pair{}
	var offRPS, onRPS, offCPU, onCPU []float64
	for i := range records {
		r := &records[i]
		if r.Scenario != "tracing" || r.Error != "" || r.Load == nil || r.Load.RPS == 0 {
			continue
		}
		p := rounds[r.Round]
		if p == nil {
			p = &pair{}
			rounds[r.Round] = p
		}
		cpu := r.TargetCores / r.Load.RPS * 1e6
		if r.Target == "tracing-on" {
			p.on = r
			onRPS, onCPU = append(onRPS, r.Load.RPS), append(onCPU, cpu)
		} else {
			p.off = r
			offRPS, offCPU = append(offRPS, r.Load.RPS), append(offCPU, cpu)
		}
	}
	s := &tracingSummary{Goal: fmt.Sprintf("ratio >= %.2f", tracingGoal)}
	for _, p := range rounds {
		if p.on != nil && p.off != nil {
			s.Ratios = append(s.Ratios, p.on.Load.RPS/p.off.Load.RPS)
		}
	}
	if len(s.Ratios) == 0 {
		return nil
	}
	slices.Sort(s.Ratios)
	s.Median, s.Min, s.Max = median(s.Ratios), s.Ratios[0], s.Ratios[len(s.Ratios)-1]
	s.OffRPS, s.OnRPS = median(offRPS), median(onRPS)
	s.OffCPUPerUs, s.OnCPUPerUs = median(offCPU), median(onCPU)
	if sink != nil {
		s.Exports, s.ExportBytes = sink.exports.Load(), sink.bytes.Load()
	}
	s.Result = "MISS"
	if s.Median >= tracingGoal {
		s.Result = "PASS"
	}
	return s
}

func printTracing(w io.Writer, records []runRecord) {
	s := summarizeTracing(records)
	if s == nil {
		return
	}
	fmt.Fprintf(w, "\ntracing (hello app under wattd, 100%% sampling, OTLP/HTTP to a discarding sink):\n")
	fmt.Fprintf(w, "  requests/s off %.0f, on %.0f (medians); target CPU per request off %.0f µs, on %.0f µs\n",
		s.OffRPS, s.OnRPS, s.OffCPUPerUs, s.OnCPUPerUs)
	fmt.Fprintf(w, "  on/off ratio: median %.3f, range %.3f..%.3f over %d rounds; goal %s: %s\n",
		s.Median, s.Min, s.Max, len(s.Ratios), s.Goal, s.Result)
	fmt.Fprintf(w, "  the sink got %d exports, %d bytes\n", s.Exports, s.ExportBytes)
}
