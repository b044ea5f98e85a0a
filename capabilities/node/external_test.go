package node

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestExternalCallSpans(t *testing.T) {
	onEveryNode(t, testExternalCallSpans)
}

// testExternalCallSpans: a call to a host that is not on the mesh, made
// while serving a request with fetch, http.get or https.get, is a client
// span named by its method, the server span's child, and carries a
// traceparent naming it, but not the request id; a call that gets no
// answer is an error span; one whose headers were given as an array goes
// out unchanged.
func testExternalCallSpans(t *testing.T) {
	seen := func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"traceparent": r.Header.Get("Traceparent"), "requestId": r.Header.Get("X-Request-Id"), "array": r.Header.Get("X-Array")})
	}
	plain := httptest.NewServer(http.HandlerFunc(seen))
	t.Cleanup(plain.Close)
	secure := httptest.NewTLSServer(http.HandlerFunc(seen))
	t.Cleanup(secure.Close)
	// A port nothing listens on: the call gets no answer.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/gone"
	ln.Close()

	w, _ := tracedWorker(t, tracedInfo("traced"))
	base := "http://" + w.tcpAddr
	call := func(via, target string) (map[string]string, []wireSpan) {
		t.Helper()
		resp, body := do(t, base+"/external?via="+via+"&url="+url.QueryEscape(target), map[string]string{"x-request-id": "ext-1"})
		var out struct {
			Status int
			Body   string
			Error  string
		}
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &out) != nil {
			t.Fatalf("%s %s: %d %q", via, target, resp.StatusCode, body)
		}
		var got map[string]string
		if out.Error == "" {
			if err := json.Unmarshal([]byte(out.Body), &got); err != nil {
				t.Fatalf("%s %s answered %+v", via, target, out)
			}
		}
		want := 2
		if via == "array" {
			want = 1
		}
		return got, w.spansUntil(via+"'s spans", func(s []wireSpan) bool { return len(s) >= want })
	}
	for _, c := range []struct{ via, target, scheme string }{
		{"fetch", plain.URL + "/fetched?key=secret", "http"},
		{"get", plain.URL + "/got?key=secret", "http"},
		{"https", secure.URL + "/secured?key=secret", "https"},
	} {
		got, spans := call(c.via, c.target)
		server, client := findSpan(spans, "server", "GET /external"), findSpan(spans, "client", "GET")
		if server == nil || client == nil || len(spans) != 2 {
			t.Fatalf("%s: spans %+v", c.via, spans)
		}
		u, _ := url.Parse(c.target)
		port := u.Port()
		if client.TraceID != server.TraceID || client.ParentSpanID != server.SpanID ||
			client.Attributes["url.full"] != c.scheme+"://"+u.Host+u.Path || client.Attributes["server.address"] != "127.0.0.1" ||
			client.Attributes["server.port"] != mustFloat(port) || client.Attributes["http.response.status_code"] != float64(200) || client.Status != "unset" {
			t.Errorf("%s: client span %+v (server %s)", c.via, client, server.SpanID)
		}
		if got["traceparent"] != "00-"+server.TraceID+"-"+client.SpanID+"-01" || got["requestId"] != "" {
			t.Errorf("%s: the other host saw %v; want the client span as parent and no request id", c.via, got)
		}
	}

	_, spans := call("fetch", closed)
	if client := findSpan(spans, "client", "GET"); client == nil || client.Status != "error" || client.Attributes["error.type"] != "_OTHER" {
		t.Errorf("a call with no answer: %+v", spans)
	}
	got, spans := call("array", plain.URL+"/array")
	if got["array"] != "1" || got["traceparent"] != "" || len(spans) != 1 || spans[0].Kind != "server" {
		t.Errorf("headers as an array: the other host saw %v, spans %+v", got, spans)
	}
	if strings.Contains(w.stderr.String(), "tracing") {
		t.Errorf("worker warned: %s", w.stderr.String())
	}
}

func mustFloat(s string) float64 {
	var f float64
	for _, c := range s {
		f = f*10 + float64(c-'0')
	}
	return f
}
