package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wattd/wattd/supervisor/logs"
)

// logBackend is the fake supervisor with a buffer of recent lines.
type logBackend struct {
	*fakeBackend
	recent *logs.Recent
}

func (b logBackend) RecentLogs() *logs.Recent { return b.recent }

// newLogged returns a logger whose entries go to a fresh Recent (and to
// /dev/null), as wattd's do.
func newLogged(t *testing.T, opts logs.RecentOptions) (*zap.Logger, *logs.Recent) {
	t.Helper()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { null.Close() })
	recent := logs.NewRecent(opts)
	t.Setenv(logs.FormatEnv, "json")
	log, _, err := logs.NewWith(null, logs.Setup{Level: "debug", Recent: recent})
	if err != nil {
		t.Fatal(err)
	}
	return log, recent
}

// collect reads a stream that ends (no follow) into its lines' messages
// and the names and workers they carry.
func collect(t *testing.T, c *Client, q LogQuery) ([]string, error) {
	t.Helper()
	var got []string
	err := c.Logs(testCtx(t), q, func(ev LogEvent) error {
		var m map[string]any
		if err := json.Unmarshal(ev.Line, &m); err != nil {
			return fmt.Errorf("line %q: %w", ev.Line, err)
		}
		got = append(got, fmt.Sprintf("%v/%v/%v", m["name"], m["worker"], m["msg"]))
		return nil
	})
	return got, err
}

func TestLogsTailAndFilters(t *testing.T) {
	log, recent := newLogged(t, logs.RecentOptions{})
	_, c := startServer(t, logBackend{newFakeBackend(), recent})
	web0 := log.With(zap.String("app", "web"), zap.Int("worker", 0))
	web1 := log.With(zap.String("app", "web"), zap.Int("worker", 1))
	for i := range 5 {
		web0.Info(fmt.Sprint("a", i))
		web1.Info(fmt.Sprint("b", i))
	}
	log.With(zap.String("app", "api"), zap.Int("worker", 0)).Warn("c0")
	log.Named("runtime").Info("own")

	cases := []struct {
		q    LogQuery
		want string
	}{
		{LogQuery{Worker: -1, Lines: 3}, "web/1/b4 api/0/c0 runtime/<nil>/own"},
		{LogQuery{App: "web", Worker: -1, Lines: 3}, "web/1/b3 web/0/a4 web/1/b4"},
		{LogQuery{App: "web", Worker: 1, Lines: 2}, "web/1/b3 web/1/b4"},
		{LogQuery{App: "web", Worker: 0, Lines: 100}, "web/0/a0 web/0/a1 web/0/a2 web/0/a3 web/0/a4"},
		{LogQuery{App: "api", Worker: -1, Lines: 0}, ""},
	}
	for _, tc := range cases {
		got, err := collect(t, c, tc.q)
		if err != nil || strings.Join(got, " ") != tc.want {
			t.Errorf("%+v: %q, %v; want %q", tc.q, got, err, tc.want)
		}
	}

	bad := []struct {
		q      LogQuery
		status int
		says   string
	}{
		{LogQuery{App: "nope", Worker: -1}, http.StatusNotFound, "known apps: api, web"},
		{LogQuery{App: "web", Worker: 2}, http.StatusNotFound, "it has workers 0 to 1"},
		{LogQuery{Worker: 1}, http.StatusBadRequest, "worker needs app"},
		{LogQuery{Worker: -1, Lines: -1}, http.StatusBadRequest, "want a number of lines"},
	}
	for _, tc := range bad {
		_, err := collect(t, c, tc.q)
		var ae *APIError
		if !errors.As(err, &ae) || ae.StatusCode != tc.status || !strings.Contains(ae.Message, tc.says) {
			t.Errorf("%+v: %v, want %d saying %q", tc.q, err, tc.status, tc.says)
		}
	}
}

// TestLogsBoundedPerApp: each app keeps its own last lines, so a noisy
// app does not push a quiet one's lines out.
func TestLogsBoundedPerApp(t *testing.T) {
	log, recent := newLogged(t, logs.RecentOptions{Lines: 10, Bytes: 1 << 20})
	_, c := startServer(t, logBackend{newFakeBackend(), recent})
	log.With(zap.String("app", "api")).Info("quiet")
	noisy := log.With(zap.String("app", "web"), zap.Int("worker", 0))
	for i := range 1000 {
		noisy.Info(fmt.Sprint("n", i))
	}
	if got, err := collect(t, c, LogQuery{App: "web", Worker: -1, Lines: 1000}); err != nil || len(got) != 10 || got[9] != "web/0/n999" {
		t.Errorf("web: %d lines %q, %v; want its last 10", len(got), got, err)
	}
	if got, err := collect(t, c, LogQuery{App: "api", Worker: -1, Lines: 5}); err != nil || strings.Join(got, " ") != "api/<nil>/quiet" {
		t.Errorf("api: %q, %v", got, err)
	}
	// The byte bound: 2 KiB holds fewer than 10 lines of 1 KiB.
	log, recent = newLogged(t, logs.RecentOptions{Lines: 10, Bytes: 2 << 10})
	big := strings.Repeat("x", 1<<10)
	for range 10 {
		log.Info(big)
	}
	if got := recent.Tail(logs.Filter{Worker: -1}, 10); len(got) != 1 {
		t.Errorf("%d lines of over 1 KiB kept within 2 KiB, want 1", len(got))
	}
}

func TestLogsFollow(t *testing.T) {
	log, recent := newLogged(t, logs.RecentOptions{})
	_, c := startServer(t, logBackend{newFakeBackend(), recent})
	web1 := log.With(zap.String("app", "web"), zap.Int("worker", 1))
	web0 := log.With(zap.String("app", "web"), zap.Int("worker", 0))
	web1.Info("before")

	ctx, cancel := context.WithCancel(testCtx(t))
	got := make(chan string, 100)
	done := make(chan error, 1)
	go func() {
		done <- c.Logs(ctx, LogQuery{App: "web", Worker: 1, Lines: 1, Follow: true}, func(ev LogEvent) error {
			var m map[string]any
			_ = json.Unmarshal(ev.Line, &m)
			got <- fmt.Sprint(m["msg"])
			return nil
		})
	}()
	next := func() string {
		select {
		case s := <-got:
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("no line within 10 s")
			return ""
		}
	}
	if s := next(); s != "before" {
		t.Fatalf("first line %q, want the recent one", s)
	}
	waitFor(t, "the follower", func() bool { return recent.Followers() == 1 })
	for i := range 3 {
		web0.Info("other worker")
		web1.Info(fmt.Sprint("live", i))
	}
	for i := range 3 {
		if s := next(); s != fmt.Sprint("live", i) {
			t.Fatalf("line %q, want live%d (worker 1 only, in order)", s, i)
		}
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Logs after cancel: %v", err)
	}
	// The server notices the client is gone and drops its follower.
	waitFor(t, "the follower to be dropped", func() bool { return recent.Followers() == 0 })
}

// TestLogsSlowFollowerNeverBlocksLogging: a follower that stops reading
// costs logging nothing; lines are dropped for it alone, and it is told
// how many when it reads again.
func TestLogsSlowFollowerNeverBlocksLogging(t *testing.T) {
	log, recent := newLogged(t, logs.RecentOptions{})
	s, _ := startServer(t, logBackend{newFakeBackend(), recent})
	conn, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET /v1/logs?n=0&follow=true HTTP/1.1\r\nHost: wattd\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("answer %v, %v", resp, err)
	}
	waitFor(t, "the follower", func() bool { return recent.Followers() == 1 })

	// Far more than the socket buffers and the follower's queue hold,
	// while nobody reads.
	const n = 100000
	start := time.Now()
	line := strings.Repeat("y", 200)
	for i := range n {
		log.Info(line, zap.Int("i", i))
	}
	took := time.Since(start)
	t.Logf("%d lines logged in %v with a stalled follower", n, took)
	if took > 20*time.Second {
		t.Fatalf("logging took %v: the stalled follower held it back", took)
	}

	var lines, missed uint64
	var last float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	deadline := time.Now().Add(20 * time.Second)
	conn.SetReadDeadline(deadline)
	for lines+missed < n && sc.Scan() {
		var ev struct {
			Line   map[string]any `json:"line"`
			Missed uint64         `json:"missed"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("%q: %v", sc.Bytes(), err)
		}
		if ev.Missed > 0 {
			missed += ev.Missed
			continue
		}
		lines++
		last = ev.Line["i"].(float64)
	}
	if missed == 0 || lines == 0 || lines+missed != n {
		t.Fatalf("got %d lines and %d missed, want %d in all with some missed", lines, missed, n)
	}
	t.Logf("the follower got %d lines and was told %d were missed; last %v", lines, missed, last)
	conn.Close()
	waitFor(t, "the follower to be dropped", func() bool { return recent.Followers() == 0 })
}

// TestLogsFollowCancelMidLine: ^C on `wattd ctl logs -f` while a line is
// half received (a busy app's entries are kilobytes long) is the normal
// way out of a follow, not a decode error that dumps the half line.
func TestLogsFollowCancelMidLine(t *testing.T) {
	sock := filepath.Join(shortTemp(t), "admin.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		io.WriteString(w, `{"line":{"msg":"whole"}}`+"\n"+`{"line":{"msg":"half of a long li`)
		w.(http.Flusher).Flush()
		close(sent)
		<-r.Context().Done()
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	c := NewClient(sock)
	t.Cleanup(c.Close)

	ctx, cancel := context.WithCancel(testCtx(t))
	var got []string
	err = c.Logs(ctx, LogQuery{Worker: -1, Lines: 1, Follow: true}, func(ev LogEvent) error {
		got = append(got, string(ev.Line))
		go func() { <-sent; time.Sleep(50 * time.Millisecond); cancel() }()
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Logs after ^C mid-line: %v, want nil or context.Canceled", err)
	}
	if len(got) != 1 || got[0] != `{"msg":"whole"}` {
		t.Fatalf("lines %q, want the whole one only", got)
	}
}
