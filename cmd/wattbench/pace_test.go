package main

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fixedServer answers every request of every connection with a 200 on
// 127.0.0.1; stall, when set, is called before each answer with the
// request's number (from 1, over all connections).
func fixedServer(t *testing.T, stall func(n int64)) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					// A request is its lines up to the blank one.
					for {
						line, err := br.ReadString('\n')
						if err != nil {
							return
						}
						if strings.TrimSpace(line) == "" {
							break
						}
					}
					if stall != nil {
						stall(n.Add(1))
					}
					if _, err := c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// A paced load sends its rate, not as much as the server takes.
func TestPacedLoadKeepsItsRate(t *testing.T) {
	addr := fixedServer(t, nil)
	st := runLoad(context.Background(), loadOpts{addr: addr, conns: 4, duration: time.Second,
		reqTimeout: 2 * time.Second, dialTimeout: 2 * time.Second, rate: 800})
	if st.failed() != 0 || st.Refused != 0 {
		t.Fatalf("failures: %+v", st)
	}
	// 800 due in the second; the last ones may fall past its end.
	if st.OK < 760 || st.OK > 800 {
		t.Errorf("%d requests answered, want about 800", st.OK)
	}
}

// A paced request's latency runs from when it was due: a server that
// stalls once is charged for every request held back behind the stall,
// which a closed loop counts as one slow request.
func TestPacedLoadChargesTheRequestsAStallHeldBack(t *testing.T) {
	stall := func(n int64) {
		if n == 100 {
			time.Sleep(60 * time.Millisecond)
		}
	}
	const every = 2 * time.Millisecond
	st := runLoad(context.Background(), loadOpts{addr: fixedServer(t, stall), conns: 1, duration: time.Second,
		reqTimeout: 2 * time.Second, dialTimeout: 2 * time.Second, rate: float64(time.Second / every)})
	if st.failed() != 0 {
		t.Fatalf("failures: %+v", st)
	}
	// The 60 ms stall holds back about 30 requests due every 2 ms; each
	// is charged from its due time: 58, 56, ... ms.
	if st.Late < 20 {
		t.Errorf("%d requests counted late behind a 60 ms stall, want about 30", st.Late)
	}
	if p := st.Hist.percentile(0.95); p < 10*time.Millisecond {
		t.Errorf("p95 %v: the requests held back were not charged from their due time", p)
	}

	closed := runLoad(context.Background(), loadOpts{addr: fixedServer(t, stall), conns: 1, duration: 500 * time.Millisecond,
		reqTimeout: 2 * time.Second, dialTimeout: 2 * time.Second})
	if closed.Late != 0 {
		t.Errorf("a closed loop counted %d late requests", closed.Late)
	}
	if closed.OK < 400 {
		t.Skipf("closed loop: only %d requests, too few to compare", closed.OK)
	}
	if p := closed.Hist.percentile(0.95); p >= 10*time.Millisecond {
		t.Errorf("closed loop p95 %v: one stall should show in its max only", p)
	}
}
