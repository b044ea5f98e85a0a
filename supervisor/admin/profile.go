package admin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/google/pprof/profile"
	"go.uber.org/zap"

	"github.com/wattd/wattd/supervisor"
	"github.com/wattd/wattd/supervisor/v8profile"
)

// Profiles: V8's CPU profiler or its sampling heap profiler in one worker,
// from start to stop, given as pprof (what `go tool pprof` and Watt's
// `wattpm pprof` files are) or as V8's own JSON (.cpuprofile,
// .heapprofile: what Chrome DevTools loads).

const (
	defaultProfileSeconds = 10
	maxProfileSeconds     = 3600
)

// profileSampling is how often a profile of a type samples: its default
// (Watt's), bounds and unit.
var profileSampling = map[string]struct {
	def, min, max int
	name          string
}{
	supervisor.ProfileCPU:  {1000, 10, 1_000_000, "intervalMicros"},
	supervisor.ProfileHeap: {512 << 10, 1024, 64 << 20, "intervalBytes"},
}

// profile is POST /v1/apps/{id}/profile?type=cpu|heap&worker=N&seconds=S&
// interval=I&format=pprof|v8: the worker is profiled for S seconds
// (default 10), and the profile is the answer's body. A client that goes
// away ends the profile.
func (s *Server) profile(r *http.Request) (int, any, error) {
	id, worker, err := s.appWorker(r)
	if err != nil {
		return 0, nil, err
	}
	q := r.URL.Query()
	typ := q.Get("type")
	if typ == "" {
		typ = supervisor.ProfileCPU
	}
	if _, ok := profileSampling[typ]; !ok {
		return 0, nil, badRequest("type must be cpu or heap, not %q", typ)
	}
	seconds := defaultProfileSeconds
	if v := q.Get("seconds"); v != "" {
		if seconds, err = strconv.Atoi(v); err != nil || seconds < 1 || seconds > maxProfileSeconds {
			return 0, nil, badRequest("seconds must be a whole number from 1 to %d, not %q", maxProfileSeconds, v)
		}
	}
	interval, err := profileInterval(typ, q.Get("interval"))
	if err != nil {
		return 0, nil, err
	}
	format := q.Get("format")
	switch format {
	case "", "pprof":
		format = "pprof"
	case "v8", "cpuprofile", "heapprofile":
		format = "v8"
	default:
		return 0, nil, badRequest("format must be pprof or v8, not %q", format)
	}
	maps := false
	switch v := q.Get("sourceMaps"); v {
	case "", "0", "false":
	case "1", "true":
		maps = true
	default:
		return 0, nil, badRequest("sourceMaps must be 1 or 0, not %q", v)
	}
	if maps && format == "v8" {
		return 0, nil, badRequest("source maps are applied to pprof profiles; V8's own JSON keeps V8's locations")
	}
	d, err := s.diagnoser("profiles")
	if err != nil {
		return 0, nil, err
	}
	index, err := d.StartProfile(r.Context(), id, worker, typ, interval)
	if err != nil {
		return 0, nil, err
	}
	t := time.NewTimer(time.Duration(seconds) * time.Second)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
		// The client went away: the profile is stopped all the same, so
		// that the worker does not go on collecting samples for nobody.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if pr, err := d.StopProfile(ctx, id, index, typ); err == nil {
			pr.File.Close()
		}
		return 0, nil, r.Context().Err()
	}
	pr, err := d.StopProfile(r.Context(), id, index, typ)
	if err != nil {
		return 0, nil, err
	}
	now := time.Now()
	if format == "v8" {
		if pr.Format == "pprof" {
			pr.File.Close()
			return 0, nil, badRequest("the worker's runtime gives its profiles as pprof, not V8's JSON: ask for format pprof")
		}
		return http.StatusOK, fileAnswer{f: pr.File, name: diagName(typ, id, index, now, typ+"profile"), log: s.log}, nil
	}
	b, err := pprofOf(pr, typ, maps, s.log)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, bytesAnswer{b: b, name: diagName(typ, id, index, now, "pb.gz")}, nil
}

// profileInterval reads a profile's sampling interval; "" is the default.
func profileInterval(typ, v string) (int, error) {
	b := profileSampling[typ]
	if v == "" {
		return b.def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < b.min || n > b.max {
		return 0, badRequest("%s must be a whole number from %d to %d, not %q", b.name, b.min, b.max, v)
	}
	return n, nil
}

// pprofOf reads the profile of typ, closes it, and gives it as pprof:
// gzipped protocol buffers (a worker's pprof as it is). With maps, the
// locations of compiled scripts are those their source maps give.
func pprofOf(pr *supervisor.Profile, typ string, maps bool, log *zap.Logger) ([]byte, error) {
	f := pr.File
	defer f.Close()
	if pr.Format == "pprof" {
		return io.ReadAll(f)
	}
	every := pr.Interval
	if every <= 0 {
		every = profileSampling[typ].def
	}
	var sm *v8profile.SourceMaps
	if maps {
		sm = v8profile.NewSourceMaps()
		defer func() { log.Debug("profile mapped to its sources", zap.Int("maps", sm.Found)) }()
	}
	var p *profile.Profile
	if typ == supervisor.ProfileHeap {
		h, err := v8profile.ReadHeap(f)
		if err != nil {
			return nil, err
		}
		h.Maps = sm
		if p, err = v8profile.HeapToPprof(h, int64(every)); err != nil {
			return nil, err
		}
		p.TimeNanos = time.Now().UnixNano()
	} else {
		c, err := v8profile.ReadCPU(f)
		if err != nil {
			return nil, err
		}
		c.Maps = sm
		if p, err = v8profile.CPUToPprof(c, time.Duration(every)*time.Microsecond); err != nil {
			return nil, err
		}
		// V8's times are of a monotonic clock; the profile ended just now.
		p.TimeNanos = time.Now().UnixNano() - p.DurationNanos
	}
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// bytesAnswer sends b as the body, named name.
type bytesAnswer struct {
	b    []byte
	name string
}

func (a bytesAnswer) write(_ context.Context, w http.ResponseWriter, _ *http.Request) {
	downloadHeaders(w, a.name)
	w.Header().Set("Content-Length", strconv.Itoa(len(a.b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(a.b)
}

// wattProfileOptions is the body of Watt's pprof/start and pprof/stop.
type wattProfileOptions struct {
	Type           string `json:"type"`
	IntervalMicros *int   `json:"intervalMicros"`
	AllWorkers     bool   `json:"allWorkers"`
	// SourceMaps, given to start, maps the profile that stop returns.
	SourceMaps bool `json:"sourceMaps"`
}

func readProfileOptions(r *http.Request) (wattProfileOptions, error) {
	var o wattProfileOptions
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return o, err
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &o); err != nil {
			return o, badRequest("the body is not the profiling options: %v", err)
		}
	}
	if o.Type == "" {
		o.Type = supervisor.ProfileCPU
	}
	if _, ok := profileSampling[o.Type]; !ok {
		return o, badRequest("type must be cpu or heap, not %q", o.Type)
	}
	return o, nil
}

// profiledWorkers are the workers a Watt profiling request is for: the
// one its id names ("api:1"), or without one the lowest ready (-1), or
// with allWorkers every ready one.
func profiledWorkers(s *Server, rawID string, all bool) (string, []int, error) {
	a, worker, err := wattAppWorker(s, rawID)
	if err != nil {
		return "", nil, err
	}
	id := a.ID
	if !all || worker >= 0 {
		return id, []int{worker}, nil
	}
	var ws []int
	for _, w := range a.Workers {
		if w.State == supervisor.StateReady.String() {
			ws = append(ws, w.Index)
		}
	}
	if len(ws) == 0 {
		return "", nil, fmt.Errorf("%w: app %q has no ready worker", ErrConflict, id)
	}
	return id, ws, nil
}

// profileKey names a profile started by Watt's pprof/start, whose
// sourceMaps its pprof/stop applies.
type profileKey struct {
	app    string
	worker int
	typ    string
}

// wattProfileRequest is a pprof/start or pprof/stop request read: its
// options, application, workers and the back end to ask.
type wattProfileRequest struct {
	opts    wattProfileOptions
	id      string
	workers []int
	d       Diagnoser
}

func readWattProfileRequest(s *Server, r *http.Request) (wattProfileRequest, error) {
	var q wattProfileRequest
	var err error
	if q.opts, err = readProfileOptions(r); err != nil {
		return q, err
	}
	if q.id, q.workers, err = profiledWorkers(s, r.PathValue("id"), q.opts.AllWorkers); err != nil {
		return q, err
	}
	q.d, err = s.diagnoser("profiles")
	return q, err
}

// pprofStart is Watt's POST /api/v1/applications/{id}/pprof/start.
// intervalMicros is the CPU profile's; a heap profile samples every
// 512 KiB, as Watt's.
func (w *wattAPI) pprofStart(s *Server, r *http.Request) (int, any, error) {
	q, err := readWattProfileRequest(s, r)
	if err != nil {
		return 0, nil, err
	}
	o := q.opts
	interval := profileSampling[o.Type].def
	if o.IntervalMicros != nil && o.Type == supervisor.ProfileCPU {
		if interval, err = profileInterval(o.Type, strconv.Itoa(*o.IntervalMicros)); err != nil {
			return 0, nil, err
		}
	}
	started := []int{}
	for _, wk := range q.workers {
		index, err := q.d.StartProfile(r.Context(), q.id, wk, o.Type, interval)
		if err != nil {
			return 0, nil, err
		}
		w.mapped.Store(profileKey{q.id, index, o.Type}, o.SourceMaps)
		started = append(started, index)
	}
	if o.AllWorkers {
		return http.StatusOK, map[string][]int{"workers": started}, nil
	}
	return http.StatusOK, map[string]any{}, nil
}

// pprofStop is Watt's POST /api/v1/applications/{id}/pprof/stop: the
// profile as pprof, or with allWorkers each worker's, base64, in JSON.
func (w *wattAPI) pprofStop(s *Server, r *http.Request) (int, any, error) {
	q, err := readWattProfileRequest(s, r)
	if err != nil {
		return 0, nil, err
	}
	type workerProfile struct {
		WorkerIndex int    `json:"workerIndex"`
		Profile     string `json:"profile"`
	}
	var profiles []workerProfile
	var errs []error
	for _, wk := range q.workers {
		pr, err := q.d.StopProfile(r.Context(), q.id, wk, q.opts.Type)
		if err == nil {
			maps, _ := w.mapped.LoadAndDelete(profileKey{q.id, pr.Worker, q.opts.Type})
			var b []byte
			if b, err = pprofOf(pr, q.opts.Type, maps == true, s.log); err == nil {
				if !q.opts.AllWorkers {
					return http.StatusOK, bytesAnswer{b: b}, nil
				}
				profiles = append(profiles, workerProfile{WorkerIndex: pr.Worker, Profile: base64.StdEncoding.EncodeToString(b)})
				continue
			}
		}
		errs = append(errs, err)
	}
	if len(profiles) == 0 {
		return 0, nil, errors.Join(errs...)
	}
	return http.StatusOK, map[string]any{"profiles": profiles}, nil
}
