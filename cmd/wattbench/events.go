package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// The crash scenario's replacement time: from a worker's death to the next
// worker listening in its place. The hello fixture, when BENCH_EVENTS names
// a file, appends one line per event to it:
//
//	listen <pid> <ms since the epoch>   in its listen callback
//	exit <pid> <ms since the epoch>     just before process.exit
//
// Every worker of a run appends to the same file, each line in one write to
// a descriptor opened with O_APPEND, so lines never interleave. The clock is
// the wall clock, the same for every process; the fixture writes it with
// microseconds.

// workerEvent is one line of an events file.
type workerEvent struct {
	kind string // "listen" or "exit"
	pid  int
	ms   float64
}

// parseEvents reads an events file. A last line without its newline is a
// write cut short by the run's end and is skipped; any other malformed line
// is an error, since it means the file is not what the fixture writes.
func parseEvents(r io.Reader) ([]workerEvent, error) {
	var out []workerEvent
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, err := br.ReadString('\n')
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 || (f[0] != "listen" && f[0] != "exit") {
			return out, fmt.Errorf("line %d: %q is not \"listen|exit <pid> <ms>\"", n, strings.TrimSpace(line))
		}
		pid, err1 := strconv.Atoi(f[1])
		ms, err2 := strconv.ParseFloat(f[2], 64)
		if err1 != nil || err2 != nil || pid <= 0 || ms <= 0 || math.IsInf(ms, 0) || math.IsNaN(ms) {
			return out, fmt.Errorf("line %d: bad pid or time in %q", n, strings.TrimSpace(line))
		}
		out = append(out, workerEvent{kind: f[0], pid: pid, ms: ms})
	}
}

// replacementGaps pairs each exit with the first later listen of another
// process not yet paired, in time order, and returns the gaps in ms. Exits
// are answered first come first served: when two workers die close
// together, the first death is paired with the first new listener. Listens
// with no death waiting (the initial workers) and deaths never answered
// (the run ended first) give no gap.
func replacementGaps(evs []workerEvent) []float64 {
	evs = slices.Clone(evs)
	// Exits sort before listens at the same instant: a replacement is never
	// faster than 0.
	slices.SortStableFunc(evs, func(a, b workerEvent) int {
		switch {
		case a.ms < b.ms:
			return -1
		case a.ms > b.ms:
			return 1
		case a.kind == b.kind:
			return 0
		case a.kind == "exit":
			return -1
		}
		return 1
	})
	var waiting []workerEvent
	var gaps []float64
	for _, e := range evs {
		if e.kind == "exit" {
			waiting = append(waiting, e)
			continue
		}
		for i, w := range waiting {
			if w.pid != e.pid {
				gaps = append(gaps, e.ms-w.ms)
				waiting = slices.Delete(waiting, i, i+1)
				break
			}
		}
	}
	return gaps
}

// replaceSummary is one run's replacement times.
type replaceSummary struct {
	Exits    int       `json:"exits"` // worker deaths noted, replaced or not
	N        int       `json:"replacements"`
	MedianMs float64   `json:"median_ms"`
	P90Ms    float64   `json:"p90_ms"`
	MaxMs    float64   `json:"max_ms"`
	GapsMs   []float64 `json:"gaps_ms"`
}

func summarizeReplace(evs []workerEvent) *replaceSummary {
	gaps := replacementGaps(evs)
	s := &replaceSummary{N: len(gaps), GapsMs: gaps}
	for _, e := range evs {
		if e.kind == "exit" {
			s.Exits++
		}
	}
	if len(gaps) > 0 {
		s.MedianMs = quantile(gaps, 0.5)
		s.P90Ms = quantile(gaps, 0.9)
		s.MaxMs = slices.Max(gaps)
	}
	return s
}

// quantile is the nearest-rank quantile q (0..1] of vals: the smallest
// value with at least q of them at or below it.
func quantile(vals []float64, q float64) float64 {
	if len(vals) == 0 {
		return 0
	}
	s := slices.Clone(vals)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}
