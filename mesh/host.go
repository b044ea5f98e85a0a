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
// gives "api", true. Application ids are DNS labels that are unique ignoring
// case, so the result is lower-cased. Any other host, including one with more
// than one label before the domain, gives ok=false.
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
	label, suffix := h[:len(h)-len(Domain)-1], h[len(h)-len(Domain)-1:]
	if !strings.EqualFold(suffix, "."+Domain) || !isLabel(label) {
		return "", false
	}
	return strings.ToLower(label), true
}

// isLabel reports whether s is one DNS label as config ids are: letters,
// digits and hyphens.
func isLabel(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-':
		default:
			return false
		}
	}
	return true
}
