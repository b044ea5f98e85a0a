package config

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"strconv"
)

// MetricsTLS is the key pairs the metrics server answers HTTPS with
// (Watt's metrics "https"): Go picks among them by the client's server
// name and signature algorithms.
type MetricsTLS struct {
	Certificates []tls.Certificate
	// ClientAuth follows Watt's (Node's) requestCert and
	// rejectUnauthorized: no client certificate asked for by default;
	// asked for and required to verify against the system's roots when
	// requestCert is true, unless rejectUnauthorized is false.
	ClientAuth tls.ClientAuthType
}

// buildMetricsTLS reads "https": "key" and "cert", each a PEM string, an
// object {"path": file} (relative to the configuration's directory), or
// an array of those, the n-th key going with the n-th certificate. nil
// when absent.
func buildMetricsTLS(raw json.RawMessage, resolve func(string) string) (*MetricsTLS, []issue, []issue) {
	const ptr = "/metrics/https"
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil, nil
	}
	var r struct {
		Key                json.RawMessage `json:"key"`
		Cert               json.RawMessage `json:"cert"`
		AllowHTTP1         *bool           `json:"allowHTTP1"`
		RequestCert        *bool           `json:"requestCert"`
		RejectUnauthorized *bool           `json:"rejectUnauthorized"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, []issue{issuef(ptr, "%v", err)}, nil
	}
	var warnings []issue
	if r.AllowHTTP1 != nil {
		warnings = append(warnings, issuef(ptr+"/allowHTTP1", "ignored: the metrics server speaks HTTP/1.1 over TLS"))
	}
	keys, problems := pemList(r.Key, ptr+"/key", resolve)
	certs, certProblems := pemList(r.Cert, ptr+"/cert", resolve)
	problems = append(problems, certProblems...)
	switch {
	case len(problems) > 0:
		return nil, problems, warnings
	case len(keys) == 0 || len(certs) == 0:
		return nil, []issue{issuef(ptr, "both \"key\" and \"cert\" are required")}, warnings
	case len(keys) != len(certs):
		return nil, []issue{issuef(ptr, "%d keys and %d certificates: each key goes with the certificate at the same place", len(keys), len(certs))}, warnings
	}
	out := &MetricsTLS{ClientAuth: tls.NoClientCert}
	if r.RequestCert != nil && *r.RequestCert {
		out.ClientAuth = tls.RequireAndVerifyClientCert
		if r.RejectUnauthorized != nil && !*r.RejectUnauthorized {
			out.ClientAuth = tls.RequestClientCert
		}
	}
	for i := range keys {
		pair, err := tls.X509KeyPair(certs[i].pem, keys[i].pem)
		if err != nil {
			return nil, []issue{issuef(certs[i].ptr, "the certificate and the key at %s do not make a key pair: %v", keys[i].ptr, err)}, warnings
		}
		out.Certificates = append(out.Certificates, pair)
	}
	return out, nil, warnings
}

type pemItem struct {
	pem []byte
	ptr string // where it came from, for errors
}

// pemList reads a key or cert value: a PEM string, {"path": file}, or an
// array of those.
func pemList(raw json.RawMessage, ptr string, resolve func(string) string) ([]pemItem, []issue) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var items []json.RawMessage
	single := json.Unmarshal(raw, &items) != nil
	if single {
		items = []json.RawMessage{raw}
	}
	var out []pemItem
	var problems []issue
	for i, item := range items {
		at := ptr
		if !single {
			at = ptr + "/" + strconv.Itoa(i)
		}
		var s string
		if err := json.Unmarshal(item, &s); err == nil {
			out = append(out, pemItem{pem: []byte(s), ptr: at})
			continue
		}
		var f struct {
			Path string `json:"path"`
		}
		dec := json.NewDecoder(bytes.NewReader(item))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil || f.Path == "" {
			problems = append(problems, issuef(at, "expected a PEM string or {\"path\": file}"))
			continue
		}
		b, err := readRegular(resolve(f.Path))
		if err != nil {
			problems = append(problems, issuef(at+"/path", "%v", err))
			continue
		}
		out = append(out, pemItem{pem: b, ptr: at + "/path"})
	}
	return out, problems
}
