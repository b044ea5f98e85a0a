package main

import (
	"bufio"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestHistogramPercentiles(t *testing.T) {
	var h histogram
	// 1..10000 µs, shuffled so that order cannot matter.
	vals := make([]time.Duration, 10000)
	for i := range vals {
		vals[i] = time.Duration(i+1) * time.Microsecond
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(vals), func(i, j int) { vals[i], vals[j] = vals[j], vals[i] })
	for _, v := range vals {
		h.record(v)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 5000 * time.Microsecond},
		{0.9, 9000 * time.Microsecond},
		{0.99, 9900 * time.Microsecond},
		{0.999, 9990 * time.Microsecond},
	} {
		got := h.percentile(tc.q)
		// Reported values are bucket tops: never below the true value and
		// at most one bucket width (1/64) above it.
		if got < tc.want || float64(got) > float64(tc.want)*(1+1.0/subBuckets) {
			t.Errorf("p%g = %v, want %v (+%.1f%%)", tc.q*100, got, tc.want, 100.0/subBuckets)
		}
	}
	if got := h.percentile(0); got != time.Microsecond {
		t.Errorf("p0 = %v, want the minimum 1µs", got)
	}
	if got := h.percentile(1); got != 10000*time.Microsecond {
		t.Errorf("p100 = %v, want the maximum 10ms", got)
	}
	if got, want := h.mean(), 5000500*time.Nanosecond; got != want {
		t.Errorf("mean = %v, want %v", got, want)
	}

	// Merging two halves gives the same distribution as recording it whole.
	var a, b histogram
	for i, v := range vals {
		if i%2 == 0 {
			a.record(v)
		} else {
			b.record(v)
		}
	}
	a.merge(&b)
	if a.total != h.total || a.min != h.min || a.max != h.max || a.percentile(0.99) != h.percentile(0.99) {
		t.Errorf("merged histogram differs: total %d/%d p99 %v/%v", a.total, h.total, a.percentile(0.99), h.percentile(0.99))
	}

	// A skewed distribution: the tail must show up at p99 and not at p50.
	var s histogram
	for i := range 1000 {
		d := 100 * time.Microsecond
		if i%50 == 0 { // 2 % slow
			d = 50 * time.Millisecond
		}
		s.record(d)
	}
	if p50 := s.percentile(0.5); p50 < 100*time.Microsecond || p50 > 102*time.Microsecond {
		t.Errorf("skewed p50 = %v, want ~100µs", p50)
	}
	if p99 := s.percentile(0.99); p99 != 50*time.Millisecond {
		t.Errorf("skewed p99 = %v, want 50ms (clamped to the max)", p99)
	}

	var empty histogram
	if empty.percentile(0.5) != 0 || empty.mean() != 0 {
		t.Error("empty histogram should report zeros")
	}
}

func TestBucketsCoverEveryValue(t *testing.T) {
	// Every value lies inside the range of its bucket, and bucket ranges
	// are contiguous, up to the largest representable value.
	probe := []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<40 + 12345, 1<<63 - 1, 1<<64 - 1}
	for _, v := range probe {
		i := bucketOf(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d out of range", v, i)
		}
		lo, hi := bucketRange(i)
		if v < lo || v > hi {
			t.Errorf("value %d in bucket %d [%d,%d]", v, i, lo, hi)
		}
	}
	for i := 1; i < histBuckets; i++ {
		_, prevHi := bucketRange(i - 1)
		lo, _ := bucketRange(i)
		if lo != prevHi+1 {
			t.Fatalf("gap between bucket %d and %d: %d then %d", i-1, i, prevHi, lo)
		}
	}
}

func parse(s string) (response, error) {
	return readResponse(bufio.NewReaderSize(strings.NewReader(s), 64))
}

func TestReadResponseContentLength(t *testing.T) {
	stream := "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nContent-Length: 11\r\nConnection: keep-alive\r\n\r\nhello world" +
		"HTTP/1.1 503 Service Unavailable\r\nCONTENT-LENGTH:  3 \r\n\r\nbad"
	br := bufio.NewReaderSize(strings.NewReader(stream), 64)
	r, err := readResponse(br)
	if err != nil || r.status != 200 || r.bodyLen != 11 || r.close {
		t.Fatalf("first response = %+v, %v", r, err)
	}
	// The body must have been consumed exactly: the next response parses.
	r, err = readResponse(br)
	if err != nil || r.status != 503 || r.bodyLen != 3 {
		t.Fatalf("second response = %+v, %v", r, err)
	}
	if _, err := readResponse(br); err != io.EOF {
		t.Fatalf("after the last response err = %v, want io.EOF", err)
	}
}

func TestReadResponseChunked(t *testing.T) {
	stream := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 999\r\n\r\n" +
		"5\r\nhello\r\n" +
		"1;ext=1\r\n \r\n" +
		"A\r\n0123456789\r\n" +
		"0\r\nX-Trailer: yes\r\n\r\n" +
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n" +
		"0\r\n\r\n"
	br := bufio.NewReaderSize(strings.NewReader(stream), 64)
	r, err := readResponse(br)
	if err != nil || r.status != 200 || r.bodyLen != 16 {
		t.Fatalf("chunked response = %+v, %v (Transfer-Encoding must win over Content-Length)", r, err)
	}
	r, err = readResponse(br)
	if err != nil || r.bodyLen != 0 || !r.close {
		t.Fatalf("empty chunked response = %+v, %v", r, err)
	}
}

func TestReadResponseOther(t *testing.T) {
	// Interim 100 Continue is skipped; 204 has no body even without a length.
	r, err := parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
	if err != nil || r.status != 204 || r.bodyLen != 0 {
		t.Errorf("100 then 204 = %+v, %v", r, err)
	}
	// No framing: the body runs to EOF and the connection is done.
	r, err = parse("HTTP/1.0 200 OK\r\n\r\nuntil close")
	if err != nil || r.bodyLen != 11 || !r.close {
		t.Errorf("EOF-delimited = %+v, %v", r, err)
	}
	r, err = parse("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n")
	if err != nil || r.close {
		t.Errorf("HTTP/1.0 keep-alive = %+v, %v", r, err)
	}

	for name, tc := range map[string]struct {
		in   string
		want error
	}{
		"closed before response": {"", io.EOF},
		"cut in status line":     {"HTTP/1.1 20", io.ErrUnexpectedEOF},
		"cut in headers":         {"HTTP/1.1 200 OK\r\nContent-Le", io.ErrUnexpectedEOF},
		"cut in body":            {"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello", io.ErrUnexpectedEOF},
		"cut in chunk":           {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", io.ErrUnexpectedEOF},
		"not HTTP":               {"SSH-2.0-OpenSSH\r\n\r\n", errProtocol},
		"bad status":             {"HTTP/1.1 2x0 OK\r\n\r\n", errProtocol},
		"bad length":             {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", errProtocol},
		"conflicting lengths":    {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx", errProtocol},
		"bad chunk size":         {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", errProtocol},
		"missing chunk CRLF":     {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n", errProtocol},
		"line too long":          {"HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 100) + "\r\n\r\n", errProtocol},
	} {
		if _, err := parse(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
}

func TestParseProcStat(t *testing.T) {
	// A command name with spaces and parentheses must not shift the fields.
	line := "4242 (node (worker) 1) S 4200 4242 4242 0 -1 4194304 101 0 0 0 250 50 0 0 20 0 11 0 98765 3133440 389 18446744073709551615 0\n"
	st, err := parseProcStat(4242, []byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.ppid != 4200 || st.state != 'S' || st.ticks != 300 || st.id != (procID{4242, 98765}) {
		t.Errorf("parsed %+v", st)
	}
}

func TestMetricsOverheadReport(t *testing.T) {
	rec := func(target string, round int, rps, cores float64) runRecord {
		return runRecord{Target: target, Scenario: metricsScenario, Round: round, Load: &loadSummary{RPS: rps}, TargetCores: cores}
	}
	records := []runRecord{
		rec("wattd", 1, 1000, 1), rec(metricsOnTarget, 1, 980, 1),
		rec(metricsOnTarget, 2, 900, 1), rec("wattd", 2, 1000, 1),
		rec("wattd", 3, 1000, 1), {Target: metricsOnTarget, Scenario: metricsScenario, Round: 3, Error: "no start"},
		rec("wattd", 4, 1000, 1), rec(metricsOnTarget, 4, 1010, 1),
		{Target: "wattd", Scenario: "throughput", Round: 1, Load: &loadSummary{RPS: 1}},
	}
	rounds := metricsRounds(records)
	if len(rounds) != 3 || rounds[0].round != 1 || rounds[1].round != 2 || rounds[2].round != 4 {
		t.Fatalf("rounds = %+v, want 1, 2 and 4 (3 failed)", rounds)
	}
	var b strings.Builder
	printMetricsOverhead(&b, records)
	out := b.String()
	for _, want := range []string{"req/s on/off median 0.980 (min 0.900, max 1.010 over 3 rounds): overhead 2.0%, goal <= 3%: PASS",
		"round 2: req/s off 1000, on 900, on/off 0.900"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
