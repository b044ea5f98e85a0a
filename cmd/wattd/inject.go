package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/wattd/wattd/mesh"
	"github.com/wattd/wattd/supervisor"
	"github.com/wattd/wattd/supervisor/admin"
)

const injectUsage = "wattd ctl inject [APP] [-X METHOD] [-H 'Name: value']... [-d BODY|@FILE] [-i] [-o FILE] [--json] [--no-fail] PATH"

// injectHelp is what `ctl inject --help` prints: the command parses its own
// flags, so urfave/cli cannot render them.
const injectHelp = `NAME:
   wattd ctl inject - send a request to APP (by default the entrypoint) through the mesh and print the response body

USAGE:
   ` + injectUsage + `

   Options may come before, between or after APP and PATH, as with curl.
   wattpm inject's options are taken too: -m, -p, -D, -f and -o. Without
   PATH (APP alone, or nothing) the request goes to /.

OPTIONS:
   -X, --request METHOD    HTTP method (default: GET, or POST with -d);
                           also -m, --method
   -p, --path PATH         the request path, instead of the PATH argument
   -H, --header 'N: v'     add a request header (repeatable)
   -d, --data BODY|@FILE   request body, or the contents of FILE
   -D, --data-file FILE    request body: the contents of FILE
   -i, --include           print the status line and the response headers too,
                           and trailers after the body; also -f, --full-output
   -o, --output FILE       write what would be printed to FILE instead
   --no-fail               exit 0 whatever the status; by default a status
                           outside 2xx prints the body and exits 1, like curl --fail-with-body
   --json                  print {"status", "headers", "body", "trailers"} as JSON instead (a body that is
                           not UTF-8 in base64, with "bodyEncoding": "base64")
   --socket PATH           admin socket of the runtime (also accepted before "inject")
   --name NAME             the running runtime called NAME (also accepted before "inject")
   -h, --help              show this help
`

// injectRequest is a parsed `ctl inject` command line. Flags may come
// before, between or after APP and PATH, as with curl, which urfave/cli
// does not allow; hence the small parser.
type injectRequest struct {
	app, path, method, body string
	socket, name, output    string
	hasBody, include, json  bool
	noFail, help            bool
	headers                 http.Header
}

// injectResult is what `ctl inject --json` prints.
type injectResult struct {
	Status  int         `json:"status"`
	Headers http.Header `json:"headers"`
	Body    string      `json:"body"`
	// Encoding is "base64" when Body is the body in base64, for a body
	// that is not UTF-8 text (a JSON string would replace its bytes).
	Encoding string `json:"bodyEncoding,omitempty"`
	// Trailers are the response's trailer fields, sent after its body.
	Trailers http.Header `json:"trailers,omitempty"`
}

func parseInject(args []string) (*injectRequest, error) {
	r := &injectRequest{headers: http.Header{}}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() (string, error) {
			if i+1 >= len(args) {
				return "", fmt.Errorf("%s needs a value; usage: %s", a, injectUsage)
			}
			i++
			return args[i], nil
		}
		switch a {
		case "-X", "--request", "-m", "--method":
			v, err := next()
			if err != nil {
				return nil, err
			}
			r.method = strings.ToUpper(v)
		case "-H", "--header":
			v, err := next()
			if err != nil {
				return nil, err
			}
			k, val, ok := strings.Cut(v, ":")
			if !ok || strings.TrimSpace(k) == "" {
				return nil, fmt.Errorf("header %q: want 'Name: value'", v)
			}
			r.headers.Add(strings.TrimSpace(k), strings.TrimSpace(val))
		case "-d", "--data":
			v, err := next()
			if err != nil {
				return nil, err
			}
			if strings.HasPrefix(v, "@") {
				b, err := os.ReadFile(v[1:])
				if err != nil {
					return nil, fmt.Errorf("-d %s: %w", v, err)
				}
				v = string(b)
			}
			r.body, r.hasBody = v, true
		case "-D", "--data-file":
			v, err := next()
			if err != nil {
				return nil, err
			}
			b, err := os.ReadFile(v)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", a, v, err)
			}
			r.body, r.hasBody = string(b), true
		case "-p", "--path":
			v, err := next()
			if err != nil {
				return nil, err
			}
			if v == "" {
				return nil, fmt.Errorf("%s needs a path; usage: %s", a, injectUsage)
			}
			r.path = v
		case "-o", "--output":
			v, err := next()
			if err != nil {
				return nil, err
			}
			r.output = v
		case "--socket":
			v, err := next()
			if err != nil {
				return nil, err
			}
			r.socket = v
		case "--name":
			v, err := next()
			if err != nil {
				return nil, err
			}
			r.name = v
		case "--json":
			r.json = true
		case "-i", "--include", "-f", "--full-output":
			r.include = true
		case "--no-fail":
			r.noFail = true
		case "-h", "--help":
			r.help = true
			return r, nil
		default:
			if strings.HasPrefix(a, "-") && len(a) > 1 {
				return nil, fmt.Errorf("unknown option %s; usage: %s", a, injectUsage)
			}
			pos = append(pos, a)
		}
	}
	// wattpm inject's -p gives the path, so the arguments are at most
	// APP; without either, the path is /, as wattpm's default.
	switch {
	case r.path != "" && len(pos) == 1 && strings.HasPrefix(pos[0], "/"):
		// An application id never starts with "/": this is a PATH.
		return nil, fmt.Errorf("a PATH argument (%q) and -p %q: give one; usage: %s", pos[0], r.path, injectUsage)
	case r.path != "" && len(pos) <= 1:
		if len(pos) == 1 {
			r.app = pos[0]
		}
	case r.path != "":
		return nil, fmt.Errorf("a PATH argument (%q) and -p %q: give one; usage: %s", pos[len(pos)-1], r.path, injectUsage)
	case len(pos) == 2:
		r.app, r.path = pos[0], pos[1]
	case len(pos) == 1 && strings.HasPrefix(pos[0], "/"):
		r.path = pos[0] // the entrypoint's, as wattpm inject does
	case len(pos) == 1:
		r.app, r.path = pos[0], "/"
	case len(pos) == 0:
		r.path = "/"
	default:
		return nil, fmt.Errorf("usage: %s", injectUsage)
	}
	if !strings.HasPrefix(r.path, "/") {
		r.path = "/" + r.path
	}
	if r.method == "" {
		r.method = http.MethodGet
		if r.hasBody {
			r.method = http.MethodPost
		}
	}
	return r, nil
}

func injectCommand(connect func(socket, name string) (*admin.Client, error), fail func(error) error) *cli.Command {
	return &cli.Command{
		Name:            "inject",
		Usage:           "send a request to APP (by default the entrypoint) through the mesh and print the response",
		ArgsUsage:       "[APP] [-X METHOD] [-H 'Name: value']... [-d BODY|@FILE] [-i] [-o FILE] [--no-fail] PATH",
		SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			req, err := parseInject(c.Args().Slice())
			if err != nil {
				return &exitError{exitUsage, err}
			}
			if req.help {
				fmt.Fprint(stdout, injectHelp)
				return nil
			}
			socket := req.socket
			if socket == "" {
				socket = ctlString(c, "socket") // given before the subcommand
			}
			name := req.name
			if name == "" {
				name = ctlString(c, "name")
			}
			if ctlBool(c, "json") {
				req.json = true
			}
			cl, err := connect(socket, name)
			if err != nil {
				return fail(err)
			}
			ctx, cancel := context.WithTimeout(c.Context, 10*time.Second)
			table, err := cl.Mesh(ctx)
			if err == nil && req.app == "" {
				var st *supervisor.RuntimeStatus
				if st, err = cl.Status(ctx); err == nil {
					req.app = st.Entrypoint
				}
			}
			cancel()
			if err != nil {
				return fail(err)
			}
			var body io.Reader
			if req.hasBody {
				body = strings.NewReader(req.body)
			}
			hr, err := http.NewRequestWithContext(c.Context, req.method, "http://"+req.app+"."+mesh.Domain+req.path, body)
			if err != nil {
				return &exitError{exitUsage, err}
			}
			hr.Header = req.headers
			// As curl: -H 'Host: …' is the Host the app is told (net/http
			// sends hr.Host, never a Host in the header map); the mesh
			// still routes by APP.
			if hosts := hr.Header.Values("Host"); len(hosts) > 0 {
				hr.Host = hosts[len(hosts)-1]
				hr.Header.Del("Host")
			}
			if req.hasBody && hr.Header.Get("Content-Type") == "" {
				hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			client := mesh.NewClient(mesh.StaticResolver{T: table})
			// A redirect is the application's answer, printed as curl
			// and wattpm print it, not followed.
			client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			resp, err := client.Do(hr)
			if err != nil {
				// net/http's error repeats the method and URL ("Get
				// \"http://…\": …"): say them once, then the cause.
				var ue *url.Error
				if errors.As(err, &ue) {
					err = ue.Err
				}
				err = fmt.Errorf("%s %s: %w", req.method, hr.URL, err)
				if errors.Is(err, mesh.ErrUnknownApp) {
					return &exitError{exitFailure, err}
				}
				return fail(err)
			}
			defer resp.Body.Close()
			var w io.Writer = stdout
			var outFile *os.File
			if req.output != "" {
				if outFile, err = os.Create(req.output); err != nil {
					return fail(fmt.Errorf("-o: %w", err))
				}
				defer outFile.Close()
				w = outFile
			}
			if req.json {
				b, err := io.ReadAll(resp.Body)
				if err != nil {
					return fail(fmt.Errorf("%s %s: read the response: %w", req.method, hr.URL, err))
				}
				res := injectResult{Status: resp.StatusCode, Headers: resp.Header, Body: string(b), Trailers: sentTrailers(resp.Trailer)}
				if !utf8.Valid(b) {
					res.Body, res.Encoding = base64.StdEncoding.EncodeToString(b), "base64"
				}
				if err := writeIndented(w, res); err != nil {
					return fail(err)
				}
			} else if req.include {
				fmt.Fprintf(w, "%s %s\n", resp.Proto, resp.Status)
				writeFields(w, resp.Header)
				fmt.Fprintln(w)
			}
			if !req.json {
				last := &lastByte{w: w}
				if _, err := io.Copy(last, resp.Body); err != nil {
					return fail(err)
				}
				// Trailers are known once the body has been read to its end.
				if t := sentTrailers(resp.Trailer); req.include && len(t) > 0 {
					if last.n > 0 && last.b != '\n' {
						fmt.Fprintln(w)
					}
					writeFields(w, t)
				}
			}
			if outFile != nil {
				if err := outFile.Close(); err != nil {
					return fail(fmt.Errorf("-o: %w", err))
				}
			}
			if !req.noFail && (resp.StatusCode < 200 || resp.StatusCode > 299) {
				return &exitError{exitFailure, fmt.Errorf("%s %s: %s (--no-fail accepts any status)", req.method, hr.URL, resp.Status)}
			}
			return nil
		},
	}
}

// writeFields prints header fields one a line, "Name: value", by name.
func writeFields(w io.Writer, h http.Header) {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			fmt.Fprintf(w, "%s: %s\n", k, v)
		}
	}
}

// sentTrailers is the trailer fields a response sent: net/http lists the
// ones its Trailer header announced before the body, with no value, and
// fills in those that came.
func sentTrailers(t http.Header) http.Header {
	out := http.Header{}
	for k, vs := range t {
		if len(vs) > 0 {
			out[k] = vs
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// lastByte passes writes on to w and remembers the last byte written, so
// that the trailers after a body start on a line of their own.
type lastByte struct {
	w io.Writer
	n int64
	b byte
}

func (l *lastByte) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	if n > 0 {
		l.n += int64(n)
		l.b = p[n-1]
	}
	return n, err
}
