package mesh

import (
	"net"
	"strings"
)

// Domain is the pseudo-domain of the mesh: application "api" is reached as
// http://api.plt.local. Nothing resolves it through DNS; only a Transport
// (or the Proxy) knows where it goes.
const Domain = "plt.local"

// AppOf returns the application named by a mesh host: "API.plt.local:80"
// gives "api", true. Application ids are unique ignoring case, so the result
// is lower-cased. Every host in the mesh domain is a mesh host, and all of
// what comes before the domain names the application: "x.api.plt.local"
// names application "x.api", which no runtime has (ids are one DNS label),
// so it fails as an unknown application instead of reaching "api". Any host
// outside the domain gives ok=false.
func AppOf(host string) (app string, ok bool) {
	h := host
	if strings.LastIndexByte(h, ':') >= 0 {
		// Only strip a port when the host really parses as host:port, so an
		// odd input is rejected below rather than mangled.
		if hp, _, err := net.SplitHostPort(h); err == nil {
			h = hp
		}
	}
	h = strings.TrimSuffix(h, ".") // a fully qualified "api.plt.local." is the same host
	if len(h) <= len(Domain)+1 {
		return "", false
	}
	name, suffix := h[:len(h)-len(Domain)-1], h[len(h)-len(Domain)-1:]
	if !strings.EqualFold(suffix, "."+Domain) || strings.ContainsAny(name, ":[]/ ") {
		return "", false
	}
	return strings.ToLower(name), true
}
