package mesh

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkGET compares one small GET through the mesh Transport (Unix
// socket) with plain net/http over loopback TCP, to the same handler.
func BenchmarkGET(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	dir := shortDir(b)
	tg := startTarget(b, dir, "w0", h)
	tcp := httptest.NewServer(h)
	b.Cleanup(tcp.Close)

	meshTr := &Transport{Resolver: StaticResolver{T: oneApp(0, tg.path)}}
	meshTimeoutTr := &Transport{Resolver: StaticResolver{T: oneApp(10_000, tg.path)}}
	tcpTr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: maxIdlePerSocket}
	b.Cleanup(func() {
		meshTr.CloseIdleConnections()
		meshTimeoutTr.CloseIdleConnections()
		tcpTr.CloseIdleConnections()
	})

	cases := []struct {
		name string
		rt   http.RoundTripper
		url  string
	}{
		{"mesh-unix", meshTr, "http://api.plt.local/"},
		{"mesh-unix-timeoutMs", meshTimeoutTr, "http://api.plt.local/"},
		{"nethttp-tcp", tcpTr, tcp.URL + "/"},
	}
	for _, c := range cases {
		client := &http.Client{Transport: c.rt}
		run := func(b *testing.B, next func() bool) {
			for next() {
				resp, err := client.Get(c.url)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			run(b, b.Loop)
		})
		b.Run(c.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) { run(b, pb.Next) })
		})
	}
}
