package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// loadOpts configures one load run: a closed loop, or paced when rate
// is set.
type loadOpts struct {
	addr        string // 127.0.0.1:port
	conns       int
	duration    time.Duration
	reqTimeout  time.Duration // a request slower than this is a failure
	dialTimeout time.Duration
	// rate, when > 0, paces the load at this many requests a second in
	// all: each connection sends its requests at fixed times, rate/conns
	// a second (staggered over the connections), and a request's latency
	// runs from the time it was due, not from when it went out, so that a
	// server that falls behind is charged for the requests it held back
	// (a closed loop sends fewer of them instead; see runLoad).
	rate float64
	// closeConn asks for a new connection for every request
	// (Connection: close).
	closeConn bool
}

// loadStats is what a run produced. Every connection counts into its own
// copy and the copies are summed at the end, so the hot path shares nothing.
type loadStats struct {
	OK      uint64        // 200 responses read in full
	Elapsed time.Duration // from the first request to the last connection done
	Dials   uint64
	// Paced load: requests that went out more than one interval after
	// they were due, because the one before was still unanswered.
	Late uint64

	// Dial failures. After each the connection waits dialBackoff before
	// trying again, so that a dead target does not turn every connection
	// into a busy loop; the count is therefore attempts, not clients.
	Refused uint64 // ECONNREFUSED: nothing was listening
	DialErr uint64 // any other dial failure, timeouts included
	// Refused attempts depend on dialBackoff; these do not. A streak is an
	// unbroken run of refusals on one connection, RefusedTime the wall time
	// from its first refusal to the next dial that did not fail that way.
	RefusedStreaks uint64
	RefusedTime    time.Duration

	// Request failures; each closes the connection, which is then re-dialled.
	Reset     uint64 // EOF, ECONNRESET or EPIPE during the request
	Timeout   uint64 // no complete response within reqTimeout
	BadStatus uint64 // a complete response other than 200
	Protocol  uint64 // a response the parser rejected
	Other     uint64
	// Of the failures above, those that hit the first request on a fresh
	// connection: a client's retry-on-stale-keepalive logic cannot hide these.
	FailedFresh uint64
	// Of Reset, those where the connection closed before any byte of the
	// response: the typical fate of an idle keep-alive connection whose
	// worker died.
	EOFBeforeResponse uint64

	Hist histogram
}

func (s *loadStats) failed() uint64 {
	return s.Reset + s.Timeout + s.BadStatus + s.Protocol + s.Other
}

func (s *loadStats) rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.OK) / s.Elapsed.Seconds()
}

func (s *loadStats) add(o *loadStats) {
	s.OK += o.OK
	s.Dials += o.Dials
	s.Late += o.Late
	s.Refused += o.Refused
	s.DialErr += o.DialErr
	s.RefusedStreaks += o.RefusedStreaks
	s.RefusedTime += o.RefusedTime
	s.Reset += o.Reset
	s.Timeout += o.Timeout
	s.BadStatus += o.BadStatus
	s.Protocol += o.Protocol
	s.Other += o.Other
	s.FailedFresh += o.FailedFresh
	s.EOFBeforeResponse += o.EOFBeforeResponse
	s.Hist.merge(&o.Hist)
}

const dialBackoff = time.Millisecond

// request is the one request the load generator ever sends.
func request(addr string, closeConn bool) []byte {
	b := []byte("GET / HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: wattbench\r\n")
	if closeConn {
		b = append(b, "Connection: close\r\n"...)
	}
	return append(b, "\r\n"...)
}

// runLoad drives o.conns connections in a closed loop (send, read the whole
// response, send again) for o.duration, or paced (o.rate). A connection that
// fails in any way is closed and dialled afresh, never reused. The loop ends
// at the deadline or when ctx is cancelled; a request in flight at that
// moment is finished, so the run can overshoot by at most reqTimeout.
//
// A closed loop measures how much a server does at full load, but its
// latencies compare servers at whatever throughput each reached: the one
// that serves more requests keeps the CPU busier, and its requests wait
// longer for it. Paced, every server gets the same requests at the same
// times, and its latency percentiles answer how long a client waits.
func runLoad(ctx context.Context, o loadOpts) *loadStats {
	req := request(o.addr, o.closeConn)
	per := make([]loadStats, o.conns)
	start := time.Now()
	end := start.Add(o.duration)
	var wg sync.WaitGroup
	for i := range per {
		var p *pacer
		if o.rate > 0 {
			every := time.Duration(float64(o.conns) / o.rate * float64(time.Second))
			p = &pacer{every: every, next: start.Add(every * time.Duration(i) / time.Duration(o.conns))}
		}
		wg.Go(func() { loadConn(ctx, o, req, end, p, &per[i]) })
	}
	wg.Wait()
	total := &loadStats{Elapsed: time.Since(start)}
	for i := range per {
		total.add(&per[i])
	}
	return total
}

// pacer is when a paced connection's requests are due.
type pacer struct {
	every time.Duration
	next  time.Time
}

// due waits until the next request is due, unless it is late already or
// end comes first, and returns when it was due; it counts a request that
// is more than an interval late. The schedule never slips: requests held
// back by a slow answer go out one after another until it has caught up.
func (p *pacer) due(ctx context.Context, end time.Time, st *loadStats) (time.Time, bool) {
	at := p.next
	p.next = p.next.Add(p.every)
	if !at.Before(end) {
		return at, false
	}
	if wait := time.Until(at); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return at, false
		}
	} else if -wait > p.every {
		st.Late++
	}
	return at, true
}

func loadConn(ctx context.Context, o loadOpts, req []byte, end time.Time, pace *pacer, st *loadStats) {
	dialer := net.Dialer{Timeout: o.dialTimeout}
	var conn net.Conn
	br := bufio.NewReaderSize(nil, readerBufferLen)
	onConn := 0 // requests sent on the current connection
	drop := func() {
		if conn != nil {
			conn.Close()
			conn = nil
		}
	}
	defer drop()
	var refusedSince time.Time
	endStreak := func() {
		if !refusedSince.IsZero() {
			st.RefusedTime += time.Since(refusedSince)
			refusedSince = time.Time{}
		}
	}
	defer endStreak()

	var dueAt time.Time // paced: when the request being made was due
	for time.Now().Before(end) && ctx.Err() == nil {
		if pace != nil && dueAt.IsZero() {
			at, ok := pace.due(ctx, end, st)
			if !ok {
				break
			}
			dueAt = at
		}
		if conn == nil {
			st.Dials++
			c, err := dialer.DialContext(ctx, "tcp4", o.addr)
			if err != nil {
				if errors.Is(err, syscall.ECONNREFUSED) {
					st.Refused++
					if refusedSince.IsZero() {
						refusedSince = time.Now()
						st.RefusedStreaks++
					}
				} else {
					st.DialErr++
					endStreak()
				}
				time.Sleep(dialBackoff)
				continue
			}
			endStreak()
			conn = c
			br.Reset(conn)
			onConn = 0
		}

		t0 := time.Now()
		if pace != nil {
			// From when it was due: a reconnection on the way counts.
			t0, dueAt = dueAt, time.Time{}
		}
		onConn++
		_ = conn.SetDeadline(t0.Add(o.reqTimeout))
		_, err := conn.Write(req)
		var resp response
		if err == nil {
			resp, err = readResponse(br)
		}
		lat := time.Since(t0)

		if err == nil && resp.status == 200 {
			st.OK++
			st.Hist.record(lat)
			if resp.close || o.closeConn {
				drop()
			}
			continue
		}
		switch {
		case err == nil:
			st.BadStatus++
		case isTimeout(err):
			st.Timeout++
		case isReset(err):
			st.Reset++
			if err == io.EOF {
				st.EOFBeforeResponse++
			}
		case errors.Is(err, errProtocol):
			st.Protocol++
		default:
			st.Other++
		}
		if onConn == 1 {
			st.FailedFresh++
		}
		drop()
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isReset(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED)
}

// probe makes one request on a fresh connection and reports whether it got a
// 200. It is how readiness is detected, so it is kept apart from the load
// loop and tolerates anything.
func probe(ctx context.Context, addr string, dialTimeout, respTimeout time.Duration) bool {
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, "tcp4", addr)
	if err != nil {
		return false
	}
	defer conn.Close()
	// Unblock the read as soon as the caller stops caring.
	stopClose := context.AfterFunc(ctx, func() { conn.Close() })
	defer stopClose()
	_ = conn.SetDeadline(time.Now().Add(respTimeout))
	if _, err := conn.Write(request(addr, true)); err != nil {
		return false
	}
	resp, err := readResponse(bufio.NewReaderSize(conn, readerBufferLen))
	return err == nil && resp.status == 200
}

func loopback(port int) string {
	return "127.0.0.1:" + strconv.Itoa(port)
}
