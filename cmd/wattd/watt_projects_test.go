package main_test

// The Watt projects of testdata/watt (two made by Watt's own generators, the
// others written after Watt's documentation for node, express, fastify and
// next apps) run under `wattd start` as they are, and must answer as they
// answer under `wattpm start`. What wattpm answered is recorded in
// testdata/watt/responses.json by testdata/watt/record.mjs.

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// wattResponse is one recorded request and what wattpm answered.
type wattResponse struct {
	Method      string            `json:"method"`
	Path        string            `json:"path"`
	Send        *string           `json:"send"`
	ContentType string            `json:"contentType"`
	Status      int               `json:"status"`
	Headers     map[string]string `json:"headers"`
	Body        string            `json:"body"`
	// BodyContains, when set, is the part of the body that must match: a
	// page carries build ids and asset hashes of its own build.
	BodyContains string `json:"bodyContains"`
}

type wattRecording struct {
	Watt      string         `json:"watt"`
	Responses []wattResponse `json:"responses"`
}

// nodeMajor returns the major version of a `node --version` string.
func nodeMajor(v string) int {
	n, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(v, "v"), ".", 2)[0])
	return n
}

func TestWattProjects(t *testing.T) {
	integration(t)
	raw, err := os.ReadFile(fixture("watt/responses.json"))
	if err != nil {
		t.Fatal(err)
	}
	var recorded map[string]wattRecording
	if err := json.Unmarshal(raw, &recorded); err != nil {
		t.Fatalf("testdata/watt/responses.json: %v", err)
	}
	names := make([]string, 0, len(recorded))
	for name := range recorded {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		rec := recorded[name]
		t.Run(name, func(t *testing.T) {
			dir := fixture("watt/" + name)
			if _, err := os.Stat(filepath.Join(dir, "node_modules")); err != nil {
				t.Fatalf("%s has no node_modules: run make deps (%v)", dir, err)
			}
			for _, n := range testNodes {
				node := nodePath(t, n)
				v := nodeVersion(t, node)
				t.Run(v, func(t *testing.T) {
					if nodeMajor(v) < 22 {
						t.Skipf("Watt needs Node.js 22 or later; %s is %s", node, v)
					}
					buildWattProject(t, name, dir, node)
					runWattProject(t, dir, node, rec)
				})
			}
		})
	}
}

// wattBuilt lists, per project, a file its build leaves; a project whose
// file is there is not built again (the build is the apps' own, e.g. next
// build, whoever ran it: wattpm build or wattd build).
var wattBuilt = map[string]string{"next": "web/frontend/.next/BUILD_ID"}

var wattBuildMu sync.Mutex

// buildWattProject runs `wattd build` for a project that needs a build and
// has none yet.
func buildWattProject(t *testing.T, name, dir, node string) {
	t.Helper()
	marker := wattBuilt[name]
	if marker == "" {
		return
	}
	wattBuildMu.Lock()
	defer wattBuildMu.Unlock()
	if _, err := os.Stat(filepath.Join(dir, marker)); err == nil {
		return
	}
	cmd := exec.Command(wattdBin, "build", dir)
	cmd.Env = append(os.Environ(), "WATTD_NODE="+node, "PORT="+strconv.Itoa(freePort(t)))
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("wattd build %s: %v\n%s", dir, err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, marker)); err != nil {
		t.Fatalf("wattd build %s left no %s: %v\n%s", dir, marker, err, out)
	}
	t.Logf("wattd build of %s took %s", name, time.Since(start).Round(100*time.Millisecond))
}

// runWattProject starts wattd on the project and checks every recorded
// response: status, the recorded headers and the body.
func runWattProject(t *testing.T, dir, node string, rec wattRecording) {
	port := freePort(t)
	d := startWattd(t, dir, port, startOpts{env: []string{"WATTD_NODE=" + node, "PORT=" + strconv.Itoa(port)}})
	first := rec.Responses[0]
	waitFor(t, 60*time.Second, "the project to answer "+first.Path, func() bool {
		select {
		case <-d.done:
			t.Fatalf("wattd exited: %v\n%s", d.err, d.out.String())
		default:
		}
		resp, err := fresh.Get(d.url(first.Path))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == first.Status
	})
	for _, want := range rec.Responses {
		code, headers, body, err := wattCall(d, want)
		what := want.Method + " " + want.Path
		if err != nil {
			t.Errorf("%s: %v", what, err)
			continue
		}
		if code != want.Status {
			t.Errorf("%s: status %d, wattpm answered %d (body %q)", what, code, want.Status, body)
		}
		for k, v := range want.Headers {
			if got := headers.Get(k); got != v {
				t.Errorf("%s: header %s %q, wattpm answered %q", what, k, got, v)
			}
		}
		if want.BodyContains != "" {
			if !strings.Contains(body, want.BodyContains) {
				t.Errorf("%s: body without %q (wattpm's had it):\n%s", what, want.BodyContains, body)
			}
		} else if body != want.Body {
			t.Errorf("%s: body\n%s\nwattpm answered\n%s", what, body, want.Body)
		}
	}
}

func wattCall(d *daemon, r wattResponse) (int, http.Header, string, error) {
	var body io.Reader
	if r.Send != nil {
		body = strings.NewReader(*r.Send)
	}
	req, err := http.NewRequest(r.Method, d.url(r.Path), body)
	if err != nil {
		return 0, nil, "", err
	}
	if r.Send != nil {
		req.Header.Set("Content-Type", r.ContentType)
	}
	resp, err := fresh.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b), err
}
