package main_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// TestDrainRefusesUpgrades: a draining worker answers an upgrade (or a
// CONNECT) asked on a kept-alive connection with 503 and "Connection:
// close" and ends the connection, instead of switching protocols (or
// opening the tunnel). A WebSocket it accepted
// would hold it to the end of gracefulShutdown.application and then be cut
// without a close frame; a refused client connects again, to the worker
// that replaced it.
func TestDrainRefusesUpgrades(t *testing.T) {
	integration(t)
	for _, n := range testNodes {
		node := nodePath(t, n)
		t.Run(nodeVersion(t, node), func(t *testing.T) {
			port := freePort(t)
			dir := project(t, map[string]any{
				"server":       map[string]any{"hostname": "127.0.0.1", "port": "{PLT_SERVER_PORT}"},
				"applications": []any{map[string]any{"id": "web", "path": fixture("apps/plain"), "workers": 1}},
			})
			d := startWattd(t, dir, port, startOpts{env: []string{"WATTD_NODE=" + node}})
			waitHTTP(t, d.url("/"), 20*time.Second)

			asks := []struct{ name, request string }{
				{"upgrade", "GET /ws HTTP/1.1\r\nHost: web\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n"},
				{"CONNECT", "CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n"},
			}
			for _, ask := range asks {
				// The drain closes an idle connection after a quiet second. A
				// connection closed before the upgrade reached the worker is what a
				// drain may do, so that round is tried again.
				for round := 1; ; round++ {
					old := d.waitReady("web", 20*time.Second).Workers[0].PID
					c, err := net.Dial("tcp", d.addr())
					if err != nil {
						t.Fatal(err)
					}
					br := bufio.NewReader(c)
					if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: web\r\n\r\n"); err != nil {
						t.Fatal(err)
					}
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						t.Fatalf("first request: %v", err)
					}
					var body struct{ PID int }
					err = json.NewDecoder(resp.Body).Decode(&body)
					resp.Body.Close()
					if err != nil || body.PID != old {
						t.Fatalf("first request answered by pid %d (%v), want %d", body.PID, err, old)
					}

					restarted := make(chan error, 1)
					go func() {
						out, err := d.ctl("restart", "web")
						if err != nil {
							err = errors.New(err.Error() + ": " + out)
						}
						restarted <- err
					}()
					waitFor(t, 20*time.Second, "the old worker to drain", func() bool {
						for _, w := range d.app("web").Workers {
							for _, l := range w.Leaving {
								if l.PID == old && l.State == "draining" {
									return true
								}
							}
						}
						return false
					})
					_, werr := io.WriteString(c, ask.request)
					c.SetReadDeadline(time.Now().Add(5 * time.Second))
					resp, err = http.ReadResponse(br, nil)
					if werr != nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
						c.Close()
						if err := <-restarted; err != nil {
							t.Fatalf("ctl restart web: %v", err)
						}
						if round == 5 {
							t.Fatalf("the drain closed the idle connection before the %s reached it, %d times", ask.name, round)
						}
						t.Logf("round %d: the connection was closed before the %s reached the worker; again", round, ask.name)
						continue
					}
					if err != nil {
						t.Fatalf("%s asked of a draining worker: %v", ask.name, err)
					}
					if resp.StatusCode != http.StatusServiceUnavailable || !resp.Close {
						t.Fatalf("%s asked of a draining worker: %s, Connection %q; want 503 and Connection: close",
							ask.name, resp.Status, resp.Header.Get("Connection"))
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if _, err := br.ReadByte(); err != io.EOF {
						t.Fatalf("connection still open after the refusal: %v", err)
					}
					c.Close()
					if err := <-restarted; err != nil {
						t.Fatalf("ctl restart web: %v", err)
					}
					break
				}
			}
		})
	}
}
