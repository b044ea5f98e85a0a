package supervisor

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor/rundir"
)

// proxyRuntime is a runtime with no processes whose mesh proxy serves with
// lim: app "api" has no ready worker, so an admitted request gets 503.
func proxyRuntime(t *testing.T, lim proxyLimits) *Runtime {
	t.Helper()
	base, err := os.MkdirTemp("", "wpx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	t.Setenv(rundir.EnvRuntimeDir, base)
	rd, err := rundir.Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rd.Remove() })
	rt := testRuntime(map[string][]State{"api": {StateBackoff}})
	rt.dir = rd
	if err := rt.openProxy(); err != nil {
		t.Fatal(err)
	}
	rt.serveProxyWith(lim)
	t.Cleanup(rt.closeProxy)
	return rt
}

// dialProxy opens a connection to the proxy, closed when the test ends.
func dialProxy(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

func proxyAddr(t *testing.T, rt *Runtime) (addr string, user *url.Userinfo) {
	t.Helper()
	u, err := url.Parse(rt.MeshProxyURL())
	if err != nil || u.User == nil {
		t.Fatalf("proxy URL %q: %v", rt.MeshProxyURL(), err)
	}
	return u.Host, u.User
}

// roundTrip sends one request on c and returns the response status.
func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader, auth string) int {
	t.Helper()
	req := "GET http://api.plt.local/x HTTP/1.1\r\nHost: api.plt.local\r\n"
	if auth != "" {
		req += "Proxy-Authorization: " + auth + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func basic(user *url.Userinfo) string {
	pass, _ := user.Password()
	r := &http.Request{Header: http.Header{}}
	r.SetBasicAuth(user.Username(), pass)
	return r.Header.Get("Authorization")
}

// waitClosed reports how long the server took to close c (a read sees EOF
// or a reset), failing after within.
func waitClosed(t *testing.T, c net.Conn, br *bufio.Reader, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(within))
	_, err := br.ReadByte()
	if err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connection not closed by the proxy within %s: %v", within, err)
	}
	return time.Since(start)
}

func TestMeshProxyAccess(t *testing.T) {
	rt := proxyRuntime(t, defaultProxyLimits)
	addr, user := proxyAddr(t, rt)
	tcp := func(auth string) int {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return roundTrip(t, c, bufio.NewReader(c), auth)
	}
	if got := tcp(""); got != http.StatusProxyAuthRequired {
		t.Errorf("TCP without credentials: %d, want 407", got)
	}
	if got := tcp(basic(url.UserPassword("wattd", "guess"))); got != http.StatusProxyAuthRequired {
		t.Errorf("TCP with a wrong token: %d, want 407", got)
	}
	if got := tcp(basic(user)); got != http.StatusServiceUnavailable {
		t.Errorf("TCP with the token: %d, want the app's 503", got)
	}
	// Go's client turns the URL's user information into the header.
	pu, _ := url.Parse(rt.MeshProxyURL())
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	resp, err := hc.Get("http://api.plt.local/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("X-Wattd-Mesh") != "no-worker" {
		t.Errorf("Go client with the proxy URL: %d %v", resp.StatusCode, resp.Header)
	}

	// The Unix socket needs no credentials, and nobody but wattd's user
	// can reach it.
	fi, err := os.Stat(rt.mesh.proxy.socket)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("proxy socket %v: %v", fi, err)
	}
	c, err := net.Dial("unix", rt.mesh.proxy.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := roundTrip(t, c, bufio.NewReader(c), ""); got != http.StatusServiceUnavailable {
		t.Errorf("Unix socket: %d, want the app's 503", got)
	}
	if tb := rt.buildMeshTable(); tb.Proxy != rt.MeshProxyURL() || tb.ProxySocket != rt.mesh.proxy.socket {
		t.Errorf("table proxy %q socket %q", tb.Proxy, tb.ProxySocket)
	}
}

func TestMeshProxyTimeouts(t *testing.T) {
	lim := proxyLimits{headerTimeout: 300 * time.Millisecond, idleTimeout: 600 * time.Millisecond, stall: time.Second, maxHeaderBytes: 4 << 10, maxConns: 4}
	rt := proxyRuntime(t, lim)
	addr, user := proxyAddr(t, rt)
	dial := func() (net.Conn, *bufio.Reader) { return dialProxy(t, addr) }

	// A connection that never sends a request is closed after the header
	// timeout; one idle after a request, after the idle timeout.
	silent, sbr := dial()
	idle, ibr := dial()
	if got := roundTrip(t, idle, ibr, basic(user)); got != http.StatusServiceUnavailable {
		t.Fatalf("status %d", got)
	}
	if d := waitClosed(t, silent, sbr, 5*time.Second); d > 3*time.Second {
		t.Errorf("silent connection closed after %s, header timeout %s", d, lim.headerTimeout)
	}
	if d := waitClosed(t, idle, ibr, 5*time.Second); d > 3*time.Second {
		t.Errorf("idle connection closed after %s, idle timeout %s", d, lim.idleTimeout)
	}

}

func TestMeshProxyCap(t *testing.T) {
	lim := defaultProxyLimits
	lim.maxConns = 4
	rt := proxyRuntime(t, lim)
	addr, user := proxyAddr(t, rt)
	dial := func() (net.Conn, *bufio.Reader) { return dialProxy(t, addr) }
	// Over the cap, connections are closed at once and counted. (The ones
	// within it stay open until the test's cleanup.)
	for range lim.maxConns {
		c, br := dial()
		if got := roundTrip(t, c, br, basic(user)); got != http.StatusServiceUnavailable {
			t.Fatalf("status %d", got)
		}
	}
	over, obr := dial()
	fmt.Fprintf(over, "GET http://api.plt.local/ HTTP/1.1\r\nHost: api.plt.local\r\n\r\n")
	if d := waitClosed(t, over, obr, 5*time.Second); d > 2*time.Second {
		t.Errorf("a connection over the cap took %s to be refused", d)
	}
	st := rt.proxyStatus()
	if st == nil || st.Open != lim.maxConns || st.Refused < 1 || st.MaxConns != lim.maxConns {
		t.Fatalf("status %+v", st)
	}
	if out := rt.Status(); out.MeshProxy == nil || out.MeshProxy.Refused != st.Refused {
		t.Fatalf("runtime status %+v", out.MeshProxy)
	}
}

func TestMeshProxyStalledClient(t *testing.T) {
	lim := defaultProxyLimits
	lim.stall = 300 * time.Millisecond
	rt := proxyRuntime(t, lim)
	addr, user := proxyAddr(t, rt)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A body announced but never sent: the proxy gives up on it.
	fmt.Fprintf(c, "POST http://api.plt.local/ HTTP/1.1\r\nHost: api.plt.local\r\nProxy-Authorization: %s\r\nContent-Length: 100\r\n\r\nabc", basic(user))
	start := time.Now()
	c.SetReadDeadline(start.Add(10 * time.Second))
	io.Copy(io.Discard, c) // the 503 (no worker: the body is never read) or nothing, then the close
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stalled request held for %s", d)
	}
	if !strings.Contains(rt.MeshProxyURL(), "@127.0.0.1:") {
		t.Errorf("proxy URL %q", rt.MeshProxyURL())
	}
}
