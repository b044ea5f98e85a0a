package admin

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/wattd/wattd/supervisor"
)

// Diagnoser is a Backend whose workers take diagnostics on request:
// POST /v1/apps/{id}/heap-snapshot and /v1/apps/{id}/profile, and Watt's
// heap-snapshot, pprof/start and pprof/stop; without it they answer 501.
type Diagnoser interface {
	// StartHeapSnapshot has worker (-1: the lowest ready one) of app id
	// take a V8 heap snapshot, and returns it once its first bytes came,
	// to be streamed (WriteTo) or abandoned (Close).
	StartHeapSnapshot(ctx context.Context, id string, worker int) (*supervisor.HeapSnapshot, error)
	// StartProfile starts V8's profiler of typ (supervisor.ProfileCPU,
	// ProfileHeap) in worker (-1: the lowest ready one) of app id,
	// sampling every interval (µs, bytes), and returns the worker's index;
	// StopProfile stops it and returns the profile.
	StartProfile(ctx context.Context, id string, worker int, typ string, interval int) (int, error)
	StopProfile(ctx context.Context, id string, worker int, typ string) (*supervisor.Profile, error)
}

var _ Diagnoser = (*supervisor.Runtime)(nil)

// heapSnapshot is POST /v1/apps/{id}/heap-snapshot[?worker=N]: the
// snapshot as the body (application/octet-stream, the .heapsnapshot JSON
// that Chrome's DevTools load), named in Content-Disposition.
func (s *Server) heapSnapshot(r *http.Request) (int, any, error) {
	id, worker, err := s.appWorker(r)
	if err != nil {
		return 0, nil, err
	}
	return takeHeapSnapshot(s, r.Context(), id, worker)
}

// appWorker is the request's application (its {id}, which must exist) and
// the query's worker=N, -1 when absent.
func (s *Server) appWorker(r *http.Request) (string, int, error) {
	id := r.PathValue("id")
	if _, err := s.findApp(id); err != nil {
		return "", 0, err
	}
	v := r.URL.Query().Get("worker")
	if v == "" {
		return id, -1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return "", 0, badRequest("worker must be a whole number, 0 or more, not %q", v)
	}
	return id, n, nil
}

// workerSuffix is Watt's way of naming one worker of an application in
// an id: "api:1".
var workerSuffix = regexp.MustCompile(`^(.+):(\d+)$`)

// heapSnapshot is Watt's POST /api/v1/applications/{id}/heap-snapshot,
// which `wattpm heap-snapshot` calls; id is "app" or "app:N".
func (w *wattAPI) heapSnapshot(s *Server, r *http.Request) (int, any, error) {
	a, worker, err := wattAppWorker(s, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return takeHeapSnapshot(s, r.Context(), a.ID, worker)
}

// wattAppWorker is the application a Watt id names, and the worker its
// ":N" does (-1 without).
func wattAppWorker(s *Server, rawID string) (supervisor.AppStatus, int, error) {
	id, worker := rawID, -1
	if m := workerSuffix.FindStringSubmatch(rawID); m != nil {
		if _, err := s.findApp(rawID); err != nil {
			id = m[1]
			worker, _ = strconv.Atoi(m[2])
		}
	}
	a, err := findWattApp(s, id)
	return a, worker, err
}

// diagnoser is the back end as a Diagnoser, or errUnsupported for what.
func (s *Server) diagnoser(what string) (Diagnoser, error) {
	d, ok := s.b.(Diagnoser)
	if !ok {
		return nil, fmt.Errorf("%s: %w", what, errUnsupported)
	}
	return d, nil
}

func takeHeapSnapshot(s *Server, ctx context.Context, id string, worker int) (int, any, error) {
	d, err := s.diagnoser("heap snapshots")
	if err != nil {
		return 0, nil, err
	}
	h, err := d.StartHeapSnapshot(ctx, id, worker)
	if err != nil {
		return 0, nil, err
	}
	name := diagName("heap", id, h.Worker, time.Now(), "heapsnapshot")
	return http.StatusOK, snapshotAnswer{h: h, name: name, log: s.log}, nil
}

// diagName is the name a heap snapshot or profile is saved under:
// KIND-APP-N-TIME.EXT (heap-api-0-2026-12-07T04-10-00Z.heapsnapshot), the
// time in UTC.
func diagName(kind, id string, worker int, at time.Time, ext string) string {
	return fmt.Sprintf("%s-%s-%d-%s.%s", kind, id, worker, at.UTC().Format("2006-01-02T15-04-05Z"), ext)
}

// DiagFileName matches the names diagName gives: a client that saves an
// answer under the name it comes with takes no other (the other end of a
// socket may not be a wattd).
var DiagFileName = regexp.MustCompile(`^(heap|cpu)-[A-Za-z0-9._-]+-[0-9]+-[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}-[0-9]{2}-[0-9]{2}Z\.(heapsnapshot|cpuprofile|heapprofile|pb\.gz)$`)

// snapshotStall bounds how long a heap snapshot's client may take no
// data: the worker's event loop waits for it meanwhile.
const snapshotStall = 15 * time.Second

// snapshotAnswer streams a heap snapshot as the worker writes it. Its
// size is not known before the end: a snapshot that fails on its way
// (the worker exited, the client stalled) ends the response without its
// last chunk, which a client sees as a cut body, not as a whole one.
type snapshotAnswer struct {
	h    *supervisor.HeapSnapshot
	name string
	log  *zap.Logger
}

func (a snapshotAnswer) write(_ context.Context, w http.ResponseWriter, _ *http.Request) {
	downloadHeaders(w, a.name)
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	n, err := a.h.WriteTo(stallWriter{w: w, rc: rc, stall: snapshotStall})
	// The connection may serve the next request.
	_ = rc.SetWriteDeadline(time.Time{})
	if err != nil {
		a.log.Warn("heap snapshot cut on its way to the client", zap.String("file", a.name), zap.Int64("bytes", n), zap.Error(err))
		panic(http.ErrAbortHandler)
	}
}

// stallWriter fails a write the client does not take within stall.
type stallWriter struct {
	w     io.Writer
	rc    *http.ResponseController
	stall time.Duration
}

func (s stallWriter) Write(p []byte) (int, error) {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.stall))
	return s.w.Write(p)
}

// downloadHeaders says the body is a file to save, called name (none
// when name is "").
func downloadHeaders(w http.ResponseWriter, name string) {
	w.Header().Set("Content-Type", "application/octet-stream")
	if name != "" {
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	}
}

// fileAnswer sends an open file as the body and closes it.
type fileAnswer struct {
	f    *os.File
	name string
	log  *zap.Logger
}

func (a fileAnswer) write(_ context.Context, w http.ResponseWriter, _ *http.Request) {
	defer a.f.Close()
	downloadHeaders(w, a.name)
	if fi, err := a.f.Stat(); err == nil {
		w.Header().Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
	}
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, a.f); err != nil {
		a.log.Debug("admin: diagnostic cut on its way to the client", zap.String("file", a.name), zap.Error(err))
	}
}
