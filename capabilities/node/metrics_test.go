package node

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// aggregationScript drives preload/metrics.cjs alone: it records requests
// and prints the histogram's report form, then times a million more
// requests of known series and prints the heap they left behind.
const aggregationScript = `
const { PerformanceObserver } = require('node:perf_hooks')
const { RequestMetrics, Histogram } = require(process.argv[1] + '/metrics.cjs')
const m = new RequestMetrics()
m.record('GET', 200, 0.005)   // on a bound: that bucket (le)
m.record('GET', 200, 0.0051)
m.record('GET', 200, 11)      // past every bound
m.record('GET', 404, 0.2)
m.record('GET', 200, 0.03)    // back to a series seen before
m.record('HEAD', 200, 0.1)    // Watt leaves HEAD, OPTIONS, TRACE, CONNECT out,
                              // also right after a GET of the same status
m.record('POST', 201, 1)
m.record('OPTIONS', 204, 0.1)
m.record('BREW', 200, 0.1)    // not an HTTP method Node knows
const report = m.hist.snapshot()
const empty = new Histogram([1]).snapshot()
m.record('GET', 201, 0.1)
m.record('POST', 200, 0.1)
// Ten million requests of known series: if each allocated even a few
// bytes, the young generation would fill, and be collected, many times.
// Only collections that started during the loop count: entries arrive
// later, and a slow start-up's own collections may arrive after it.
let gcs = 0
let from = Infinity
let to = Infinity
new PerformanceObserver((l) => {
  for (const e of l.getEntries()) if (e.startTime >= from && e.startTime <= to) gcs++
}).observe({ entryTypes: ['gc'] })
// Measured on a second call: the first runs partly in V8's interpreter
// until its optimised code is ready (later on a loaded machine), and the
// interpreter boxes the doubles it passes, an allocation of this loop's,
// not of record's.
const run = (n) => {
  for (let i = 0; i < n; i++) m.record(i & 1 ? 'GET' : 'POST', i & 2 ? 200 : 201, (i % 1000) / 1000)
}
setTimeout(() => {
  run(1e7)
  from = performance.now()
  run(1e7)
  to = performance.now()
  setTimeout(() => console.log(JSON.stringify({ report, empty, gcs })), 50)
}, 50)
`

func TestRequestAggregation(t *testing.T) {
	dir := preloadDir(t)
	for name, bin := range nodeBinaries(t) {
		t.Run(name, func(t *testing.T) {
			out, err := exec.Command(bin, "--expose-gc", "-e", aggregationScript, dir).CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			var got struct {
				Report struct {
					Bounds []float64 `json:"bounds"`
					Series []struct {
						Method     string   `json:"method"`
						StatusCode int      `json:"statusCode"`
						Counts     []uint64 `json:"counts"`
						Sum        float64  `json:"sum"`
					} `json:"series"`
				} `json:"report"`
				Empty any `json:"empty"`
				GCs   int `json:"gcs"`
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if want := []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}; !slices.Equal(got.Report.Bounds, want) {
				t.Errorf("bounds %v, want %v", got.Report.Bounds, want)
			}
			want := map[string][]uint64{
				"GET 200":  {1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1},
				"GET 404":  {0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0},
				"POST 201": {0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0},
			}
			if len(got.Report.Series) != len(want) {
				t.Errorf("series %+v, want %d", got.Report.Series, len(want))
			}
			for _, s := range got.Report.Series {
				key := s.Method + " " + itoa(s.StatusCode)
				if !slices.Equal(s.Counts, want[key]) {
					t.Errorf("%s counts %v, want %v", key, s.Counts, want[key])
				}
				if key == "GET 200" && (s.Sum < 11.04 || s.Sum > 11.041) {
					t.Errorf("GET 200 sum %v, want 11.0401", s.Sum)
				}
			}
			if got.Empty != nil {
				t.Errorf("a histogram with no series reports %v, want null", got.Empty)
			}
			if got.GCs > 5 {
				t.Errorf("ten million recorded requests caused %d garbage collections; the aggregation allocates", got.GCs)
			}
		})
	}
}

// labelledScript drives the request labels of httpCustomLabels: values
// from headers, the default, long values cut, and the bound on series.
const labelledScript = `
const { RequestMetrics, MAX_LABELLED_SERIES } = require(process.argv[1] + '/metrics.cjs')
const m = new RequestMetrics([
  { name: 'tenant', header: 'x-tenant', default: 'unknown' },
  { name: 'region', header: 'x-region', default: 'none' }
])
// A header named like an Object.prototype property the request lacks.
const odd = new RequestMetrics([{ name: 'c', header: 'constructor', default: 'unknown' }])
odd.record('GET', 200, 0.001, { headers: {} })
odd.record('GET', 200, 0.001, { headers: { constructor: 'given' } })
const req = (headers) => ({ headers })
m.record('GET', 200, 0.001, req({ 'x-tenant': 'acme', 'x-region': 'eu' }))
m.record('GET', 200, 0.001, req({ 'x-tenant': 'acme', 'x-region': 'eu' }))
m.record('GET', 200, 0.001, req({ 'x-tenant': 'globex' }))
m.record('GET', 500, 0.001, req({ 'x-tenant': 'acme', 'x-region': 'eu' }))
m.record('HEAD', 200, 0.001, req({ 'x-tenant': 'acme' }))
m.record('POST', 201, 0.001, req({ 'x-tenant': 'x'.repeat(1000) }))
const small = m.hist.snapshot()
for (let i = 0; i < MAX_LABELLED_SERIES + 100; i++) m.record('GET', 200, 0.001, req({ 'x-tenant': 't' + i }))
const big = m.hist.snapshot()
console.log(JSON.stringify({ small, big, odd: odd.hist.snapshot() }))
`

// TestRequestAggregationLabelled: with labels taken from headers, each
// combination is its own series, and a client sending ever new values
// cannot grow the series past the bound.
func TestRequestAggregationLabelled(t *testing.T) {
	dir := preloadDir(t)
	for name, bin := range nodeBinaries(t) {
		t.Run(name, func(t *testing.T) {
			out, err := exec.Command(bin, "-e", labelledScript, dir).Output()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			type series struct {
				Method     string   `json:"method"`
				StatusCode int      `json:"statusCode"`
				Labels     []string `json:"labels"`
				Counts     []uint64 `json:"counts"`
			}
			var got struct {
				Small struct{ Series []series } `json:"small"`
				Big   struct{ Series []series } `json:"big"`
				Odd   struct{ Series []series } `json:"odd"`
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			count := func(ss []series) map[string]uint64 {
				m := map[string]uint64{}
				for _, s := range ss {
					var n uint64
					for _, c := range s.Counts {
						n += c
					}
					m[fmt.Sprintf("%s %d %v", s.Method, s.StatusCode, s.Labels)] = n
				}
				return m
			}
			want := map[string]uint64{
				"GET 200 [acme eu]": 2, "GET 200 [globex none]": 1, "GET 500 [acme eu]": 1,
				"POST 201 [" + strings.Repeat("x", 128) + " none]": 1,
			}
			if got := count(got.Small.Series); !maps.Equal(got, want) {
				t.Errorf("series %v, want %v", got, want)
			}
			if odd := count(got.Odd.Series); !maps.Equal(odd, map[string]uint64{"GET 200 [unknown]": 1, "GET 200 [given]": 1}) {
				t.Errorf("a header named constructor: %v", odd)
			}
			big := count(got.Big.Series)
			if len(big) != 501 || big["GET 200 [_overflow _overflow]"] != 104 {
				t.Errorf("after 600 new tenants: %d series, %d requests under _overflow; want 501 and 104 (the first 496 tenants fill the 500 series, the next 104 share one)",
					len(big), big["GET 200 [_overflow _overflow]"])
			}
		})
	}
}

// TestClientAggregationBounded: an app calling ever new hosts cannot grow
// the outgoing requests' series past the bound.
func TestClientAggregationBounded(t *testing.T) {
	dir := preloadDir(t)
	script := `
const { ClientMetrics } = require(process.argv[1] + '/metrics.cjs')
const c = new ClientMetrics()
for (let i = 0; i < 600; i++) c.record('GET', 200, 'http://h' + i + '.example', '', 0.01)
c.record('GET', 0, 'http://h1.example', 'ECONNRESET', 0.01)
const byOrigin = {}
for (const s of c.hist.snapshot().series) byOrigin[s.origin + ' ' + s.statusCode + ' ' + s.error] = s.counts.reduce((a, b) => a + b, 0)
console.log(JSON.stringify(byOrigin))
`
	out, err := exec.Command("node", "-e", script, dir).Output()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got map[string]int
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// 500 origins fill the series; the next 100, and the new combination
	// of a known origin with an error, count under _overflow.
	if len(got) != 502 || got["_overflow 200 "] != 100 || got["_overflow 0 ECONNRESET"] != 1 || got["http://h0.example 200 "] != 1 {
		t.Errorf("%d series, _overflow 200: %d, _overflow 0 ECONNRESET: %d", len(got), got["_overflow 200 "], got["_overflow 0 ECONNRESET"])
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// preloadDir writes the preload's modules into a directory, for tests that
// load some of them alone.
func preloadDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, b := range preloadFiles() {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// managedScript runs startMetrics with two loopback servers managed (one
// there at the start, one added after it with a response class of the
// app's own, as the app's servers are adopted) and one not, and sends
// keep-alive requests to all three, interleaved; it prints what was counted
// and timed, and what the app's handlers saw of their responses.
const managedScript = `
const http = require('node:http')
const { startMetrics } = require(process.argv[1] + '/metrics.cjs')
class Mine extends http.ServerResponse {}
let mine = 0
const names = new Set()
const managed = http.createServer((req, res) => { names.add(res.constructor.name); res.end('m') })
const other = http.createServer((req, res) => res.end('o'))
const custom = http.createServer({ ServerResponse: Mine }, (req, res) => { if (res instanceof Mine) mine++; res.end('c') })
const state = { servers: new Set([managed]), metrics: null }
const m = startMetrics(state)
state.servers.add(custom)
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
const get = (srv) => new Promise((resolve, reject) => {
  http.get({ port: srv.address().port, host: '127.0.0.1', agent }, (res) => { res.resume(); res.on('end', resolve) }).on('error', reject)
})
Promise.all([managed, other, custom].map((s) => new Promise((r) => s.listen(0, '127.0.0.1', r)))).then(async () => {
  for (const s of [other, managed, other, custom, other, managed, managed, other, custom, managed]) await get(s)
  const snap = m.requests.hist.snapshot()
  const timed = snap === null ? 0 : snap.series.reduce((n, s) => n + s.counts.reduce((a, b) => a + b, 0), 0)
  console.log(JSON.stringify({ received: m.requests.received, timed, mine, names: [...names] }))
  process.exit(0)
})
`

// TestOnlyManagedServersTimed: requests to a server the preload does not
// manage (one the app opens for itself) are neither counted nor timed,
// whichever server was seen last; a managed server with a response class
// of the app's own is timed too, and its handler sees that class.
func TestOnlyManagedServersTimed(t *testing.T) {
	dir := preloadDir(t)
	for name, bin := range nodeBinaries(t) {
		t.Run(name, func(t *testing.T) {
			out, err := exec.Command(bin, "-e", managedScript, dir).CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			var got struct {
				Received, Timed, Mine int
				Names                 []string
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if got.Received != 6 || got.Timed != 6 {
				t.Errorf("received %d, timed %d; want the managed servers' 6 of 10 requests", got.Received, got.Timed)
			}
			if got.Mine != 2 || !slices.Equal(got.Names, []string{"ServerResponse"}) {
				t.Errorf("the app's class was on %d of 2 responses, Node's named %v; want 2 and [ServerResponse]", got.Mine, got.Names)
			}
		})
	}
}

// windowScript records request durations in known buckets of the recent
// distribution and prints the window's pairs as the report carries them:
// at once, after the current slot was closed, and after the window moved
// past every slot that held them.
const windowScript = `
const { RequestMetrics, Q_SUB, Q_MIN_EXP, Q_BUCKETS } = require(process.argv[1] + '/metrics.cjs')
const m = new RequestMetrics()
const at = (b) => 2 ** (Q_MIN_EXP + (b + 0.5) / Q_SUB) // the middle of bucket b
for (let i = 0; i < 3; i++) m.record('GET', 200, at(100))
m.record('GET', 200, at(101))
m.record('GET', 200, 0)          // nothing below the first bucket is lost
m.record('GET', 200, 1e-9)
m.record('GET', 200, 1000)       // nor above the last
m.record('POST', 201, at(7))
const first = m.hist.snapshot(m.window)
m.window.slotStart -= 10001      // the slot is 10 s old: it is closed
m.record('GET', 200, at(100))
const closed = m.hist.snapshot(m.window)
for (let i = 0; i < 6; i++) {    // six more slots: the first ones leave
  m.window.slotStart -= 10001
  m.hist.snapshot(m.window)
}
m.record('GET', 200, at(5))
const moved = m.hist.snapshot(m.window)
// Reports further apart than a slot: the slots between count as empty.
const sparse = new RequestMetrics()
sparse.record('GET', 200, at(50))
sparse.window.slotStart -= 50001 // five slots: still in the window
const fifty = sparse.hist.snapshot(sparse.window)
sparse.record('GET', 200, at(60))
sparse.window.slotStart -= 10001 // one more: at(50) is 60 s old
const sixty = sparse.hist.snapshot(sparse.window)
console.log(JSON.stringify({ first, closed, moved, fifty, sixty, buckets: Q_BUCKETS }))
`

// TestRequestWindow: each series of the request durations carries its
// recent distribution (for http_request_all_summary_seconds): counts in
// buckets of a log scale, out-of-range values in the end buckets, over a
// window of the last 50 to 60 s.
func TestRequestWindow(t *testing.T) {
	dir := preloadDir(t)
	for name, bin := range nodeBinaries(t) {
		t.Run(name, func(t *testing.T) {
			out, err := exec.Command(bin, "-e", windowScript, dir).CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			type report struct {
				Window struct{ Sub, MinExp, Buckets int } `json:"window"`
				Series []struct {
					Method string   `json:"method"`
					Window []uint64 `json:"window"`
				} `json:"series"`
			}
			var got struct {
				First, Closed, Moved, Fifty, Sixty report
				Buckets                            int
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if w := got.First.Window; w.Sub != 16 || w.MinExp != -20 || w.Buckets != 432 || got.Buckets != 432 {
				t.Errorf("scale %+v (%d buckets), want 16 a doubling from 2^-20 s, 432 buckets", w, got.Buckets)
			}
			pairs := func(r report, method string) []uint64 {
				for _, s := range r.Series {
					if s.Method == method {
						return s.Window
					}
				}
				return nil
			}
			for _, c := range []struct {
				what string
				got  []uint64
				want []uint64
			}{
				{"GET at first", pairs(got.First, "GET"), []uint64{0, 2, 100, 3, 101, 1, 431, 1}},
				{"POST at first", pairs(got.First, "POST"), []uint64{7, 1}},
				{"GET with its slot closed", pairs(got.Closed, "GET"), []uint64{0, 2, 100, 4, 101, 1, 431, 1}},
				{"GET once the window moved on", pairs(got.Moved, "GET"), []uint64{5, 1}},
				{"POST once the window moved on", pairs(got.Moved, "POST"), []uint64{}},
				{"50 s after, with no report between", pairs(got.Fifty, "GET"), []uint64{50, 1}},
				{"60 s after", pairs(got.Sixty, "GET"), []uint64{60, 1}},
			} {
				if !slices.Equal(c.got, c.want) && !(len(c.got) == 0 && len(c.want) == 0) {
					t.Errorf("%s: pairs %v, want %v", c.what, c.got, c.want)
				}
			}
		})
	}
}
