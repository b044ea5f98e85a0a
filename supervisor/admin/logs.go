package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wattd/wattd/supervisor/logs"
)

// GET /v1/logs?app=ID&worker=N&n=LINES&follow=1 answers the last LINES
// lines (default DefaultLogLines) that wattd keeps in memory (logs.Recent),
// of one app, one of its workers or the whole runtime, as NDJSON:
//
//	{"line": {…the entry, in the pino format of wattd's JSON output…}}
//	{"missed": 12}
//
// With follow it goes on sending lines as they are logged until the client
// disconnects or wattd stops. A follower never slows logging down: when it
// reads too slowly, lines are dropped for it alone, and a "missed" object
// says how many before the next line it gets.

// DefaultLogLines is how many lines `wattd ctl logs` asks for without -n.
const DefaultLogLines = 50

// LogSource is implemented by a Backend that keeps recent log lines.
type LogSource interface {
	RecentLogs() *logs.Recent
}

// LogQuery selects log lines.
type LogQuery struct {
	App    string // "" for the whole runtime
	Worker int    // -1 for every worker of App
	Lines  int    // how many recent lines first; 0 for none
	Follow bool
}

// LogEvent is one object of the stream: a line, or a count of lines
// dropped for this reader.
type LogEvent struct {
	Line   json.RawMessage `json:"line,omitempty"`
	Missed uint64          `json:"missed,omitempty"`
}

// logStream is the answer of getLogs: written by dispatch as a stream
// rather than as one JSON value.
type logStream struct {
	recent *logs.Recent
	filter logs.Filter
	lines  int
	follow bool
}

// flushEvery bounds how long a followed line waits in the write buffer:
// lines are written as they come and flushed when none is waiting, or at
// this pace under a flood, so a burst costs few writes.
const flushEvery = 100 * time.Millisecond

// recentLogs is the back end's recent lines, or an error matching
// ErrNotFound when it keeps none.
func (s *Server) recentLogs() (*logs.Recent, error) {
	src, ok := s.b.(LogSource)
	if !ok || src.RecentLogs() == nil {
		return nil, fmt.Errorf("%w: this wattd keeps no log lines", ErrNotFound)
	}
	return src.RecentLogs(), nil
}

func (s *Server) getLogs(r *http.Request) (int, any, error) {
	recent, err := s.recentLogs()
	if err != nil {
		return 0, nil, err
	}
	q := r.URL.Query()
	st := logStream{recent: recent, filter: logs.Filter{App: q.Get("app"), Worker: -1}, lines: DefaultLogLines}
	if v := q.Get("n"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, nil, badRequest("n=%q: want a number of lines, 0 or more", v)
		}
		st.lines = n
	}
	if v := q.Get("follow"); v != "" {
		f, err := strconv.ParseBool(v)
		if err != nil {
			return 0, nil, badRequest("follow=%q: want true or false", v)
		}
		st.follow = f
	}
	if st.filter.App != "" {
		app, err := s.findApp(st.filter.App)
		if err != nil {
			return 0, nil, err
		}
		if v := q.Get("worker"); v != "" {
			w, err := strconv.Atoi(v)
			if err != nil || w < 0 || w >= len(app.Workers) {
				return 0, nil, fmt.Errorf("%w worker %q of app %q (it has workers 0 to %d)", ErrNotFound, v, app.ID, len(app.Workers)-1)
			}
			st.filter.Worker = w
		}
	} else if q.Get("worker") != "" {
		return 0, nil, badRequest("worker needs app: wattd ctl logs APP --worker N")
	}
	return http.StatusOK, st, nil
}

// errBadRequest marks a malformed query (HTTP 400).
var errBadRequest = errors.New("bad request")

type badRequestError struct{ msg string }

func (e *badRequestError) Error() string        { return e.msg }
func (e *badRequestError) Is(target error) bool { return target == errBadRequest }

func badRequest(format string, args ...any) error {
	return &badRequestError{fmt.Sprintf(format, args...)}
}

// write sends the tail, then, when following, every new line until ctx
// ends or the client goes away.
func (st logStream) write(ctx context.Context, w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	bw := bufio.NewWriterSize(w, 32<<10)
	flush := func() error {
		if err := bw.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}
	var (
		tail []logs.Line
		fo   *logs.Follower
	)
	if st.follow {
		tail, fo = st.recent.Follow(st.filter, st.lines)
		defer fo.Close()
	} else {
		tail = st.recent.Tail(st.filter, st.lines)
	}
	for _, l := range tail {
		writeLine(bw, l.JSON)
	}
	if err := flush(); err != nil || fo == nil {
		return
	}
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	dirty := false
	for {
		select {
		case <-ctx.Done():
			return
		case l := <-fo.Lines():
			writeLine(bw, l.JSON)
			dirty = true
			if len(fo.Lines()) == 0 {
				// Lines are dropped only while the queue is full, so the
				// gap comes after the lines queued then: here.
				if n := fo.Missed(); n > 0 {
					fmt.Fprintf(bw, "{\"missed\":%d}\n", n)
				}
				if flush() != nil {
					return
				}
				dirty = false
			}
		case <-tick.C:
			if n := fo.Missed(); n > 0 {
				fmt.Fprintf(bw, "{\"missed\":%d}\n", n)
				dirty = true
			}
			if dirty {
				if flush() != nil {
					return
				}
				dirty = false
			}
		}
	}
}

func writeLine(w io.Writer, line []byte) {
	io.WriteString(w, `{"line":`)
	w.Write(line)
	io.WriteString(w, "}\n")
}

// Logs reads the lines q selects and hands each event to fn, until the
// stream ends (without Follow: after the recent lines), ctx is done, or fn
// returns an error, which Logs returns.
func (c *Client) Logs(ctx context.Context, q LogQuery, fn func(LogEvent) error) error {
	v := url.Values{}
	if q.App != "" {
		v.Set("app", q.App)
	}
	if q.Worker >= 0 {
		v.Set("worker", strconv.Itoa(q.Worker))
	}
	v.Set("n", strconv.Itoa(q.Lines))
	if q.Follow {
		v.Set("follow", "true")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/v1/logs?"+v.Encode(), nil)
	if err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("logs: %w", c.transportError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		return fmt.Errorf("logs: %w", decodeError(resp, body))
	}
	sc := bufio.NewScanner(resp.Body)
	// A line is at most what the Sink keeps of one entry, in JSON.
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var ev LogEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			// A read that failed mid-line (ctx cancelled: ^C on a follow)
			// still hands the Scanner's last, partial line over: the end
			// of the stream, not a bad line.
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if serr := sc.Err(); serr != nil {
				return fmt.Errorf("logs: read from wattd at %s: %w", c.socket, serr)
			}
			b := sc.Bytes()
			if len(b) > 200 {
				b = b[:200]
			}
			return fmt.Errorf("logs: decode %q: %w", b, err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("logs: read from wattd at %s: %w", c.socket, err)
	}
	return nil
}

// pinoLabels are the level names of pino's numbers, padded for columns.
var pinoLabels = map[float64]string{10: "TRACE", 20: "DEBUG", 30: "INFO ", 40: "WARN ", 50: "ERROR", 60: "FATAL"}

// envelope are the members RenderLogLine shows in its own columns, or not
// at all (pid and hostname: ctl ps shows the pids).
var envelope = map[string]bool{"level": true, "time": true, "pid": true, "hostname": true, "name": true, "worker": true, "msg": true}

// RenderLogLine prints one line of the logs stream for a person:
//
//	15:04:05.000 INFO  api:1 listening port=3000
//
// the local time, the level, the app (or wattd's component) and worker,
// the message and the other members as key=value.
func RenderLogLine(w io.Writer, line []byte) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		fmt.Fprintf(w, "%s\n", line)
		return
	}
	ts := ""
	if n, ok := m["time"].(json.Number); ok {
		if ms, err := n.Int64(); err == nil {
			ts = time.UnixMilli(ms).Format("15:04:05.000")
		}
	}
	label := "?    "
	if n, ok := m["level"].(json.Number); ok {
		if f, err := n.Float64(); err == nil {
			for _, step := range []float64{60, 50, 40, 30, 20, 10} {
				if f >= step {
					label = pinoLabels[step]
					break
				}
			}
		}
	}
	who := "wattd"
	if s, ok := m["name"].(string); ok && s != "" {
		who = s
	}
	if n, ok := m["worker"].(json.Number); ok {
		who += ":" + n.String()
	}
	msg, _ := m["msg"].(string)
	msg = logs.Printable(msg)
	who = logs.Printable(who)
	var extra []string
	for k := range m {
		if !envelope[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s %s", ts, label, who, msg)
	for _, k := range extra {
		b.WriteString(" " + logs.Printable(k) + "=")
		if s, ok := m[k].(string); ok && s != "" && !strings.ContainsAny(s, " =\"\n\t") && logs.Printable(s) == s {
			b.WriteString(s)
			continue
		}
		v, _ := json.Marshal(m[k])
		b.WriteString(logs.Printable(string(v)))
	}
	b.WriteByte('\n')
	io.WriteString(w, b.String())
}
