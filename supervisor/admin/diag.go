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
// POST /v1/apps/{id}/heap-snapshot and Watt's
// POST /api/v1/applications/{id}/heap-snapshot; without it they answer 501.
type Diagnoser interface {
	// HeapSnapshot has worker (-1: the lowest ready one) of app id take
	// a V8 heap snapshot, and returns it open and already unlinked, with
	// the worker's index.
	HeapSnapshot(ctx context.Context, id string, worker int) (*os.File, int, error)
}

var _ Diagnoser = (*supervisor.Runtime)(nil)

// heapSnapshot is POST /v1/apps/{id}/heap-snapshot[?worker=N]: the
// snapshot as the body (application/octet-stream, the .heapsnapshot JSON
// that Chrome's DevTools load), named in Content-Disposition.
func (s *Server) heapSnapshot(r *http.Request) (int, any, error) {
	id := r.PathValue("id")
	if _, err := s.findApp(id); err != nil {
		return 0, nil, err
	}
	worker := -1
	if v := r.URL.Query().Get("worker"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, nil, badRequest("worker must be a whole number, 0 or more, not %q", v)
		}
		worker = n
	}
	return takeHeapSnapshot(s, r.Context(), id, worker)
}

// workerSuffix is Watt's way of naming one worker of an application in
// an id: "api:1".
var workerSuffix = regexp.MustCompile(`^(.+):(\d+)$`)

// heapSnapshot is Watt's POST /api/v1/applications/{id}/heap-snapshot,
// which `wattpm heap-snapshot` calls; id is "app" or "app:N".
func (w *wattAPI) heapSnapshot(s *Server, r *http.Request) (int, any, error) {
	id, worker := r.PathValue("id"), -1
	if m := workerSuffix.FindStringSubmatch(id); m != nil {
		if _, err := s.findApp(id); err != nil {
			id = m[1]
			worker, _ = strconv.Atoi(m[2])
		}
	}
	if _, err := findWattApp(s, id); err != nil {
		return 0, nil, err
	}
	return takeHeapSnapshot(s, r.Context(), id, worker)
}

func takeHeapSnapshot(s *Server, ctx context.Context, id string, worker int) (int, any, error) {
	d, ok := s.b.(Diagnoser)
	if !ok {
		return 0, nil, fmt.Errorf("heap snapshots: %w", errUnsupported)
	}
	f, index, err := d.HeapSnapshot(ctx, id, worker)
	if err != nil {
		return 0, nil, err
	}
	name := fmt.Sprintf("heap-%s-%d-%s.heapsnapshot", id, index, time.Now().UTC().Format("2006-01-02T15-04-05Z"))
	return http.StatusOK, fileAnswer{f: f, name: name, log: s.log}, nil
}

// fileAnswer sends an open file as the body and closes it.
type fileAnswer struct {
	f    *os.File
	name string
	log  *zap.Logger
}

func (a fileAnswer) write(_ context.Context, w http.ResponseWriter, _ *http.Request) {
	defer a.f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="`+a.name+`"`)
	if fi, err := a.f.Stat(); err == nil {
		w.Header().Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
	}
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, a.f); err != nil {
		a.log.Debug("admin: diagnostic cut on its way to the client", zap.String("file", a.name), zap.Error(err))
	}
}
