package metrics

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/wattd/wattd/supervisor"
	"github.com/wattd/wattd/supervisor/config"
)

// verdict is a probe's judgement: whether it passes, what is wrong when
// it does not, and the answer an application's custom check asked for
// (Watt lets a readiness check return {status, statusCode, body}).
type verdict struct {
	ok     bool
	detail string
	custom config.ProbeAnswer
}

// probeHandler answers a probe with the configured codes and bodies.
// The status code and body an application's check gave come first, then
// those of watt.json, then Watt's defaults (200 "OK", 500), except that a
// failure says what is wrong instead of Watt's "ERR". As in Watt, the
// probes do not ask for the metrics credentials, so that an orchestrator
// can call them as they are; with auth set, only a caller that gives the
// credentials is told which applications are not ready and why.
func probeHandler(p config.Probe, auth *config.BasicAuth, judge func(*http.Request) verdict) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := judge(r)
		answer, code, body := p.Success, http.StatusOK, "OK"
		if !v.ok {
			answer, code, body = p.Fail, http.StatusInternalServerError, v.detail
			if auth != nil && !authorized(*auth, r) {
				body = "ERR"
			}
		}
		code = firstNonZero(v.custom.StatusCode, answer.StatusCode, code)
		if code < 100 || code > 599 {
			// Worker answers are checked on arrival; this keeps a bad one
			// from reaching WriteHeader, which panics outside 100-999.
			code = http.StatusInternalServerError
		}
		body = firstNonZero(v.custom.Body, answer.Body, body)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body) // exactly the body, as Watt sends it
	})
}

func firstNonZero[T comparable](vs ...T) T {
	var zero T
	for _, v := range vs {
		if v != zero {
			return v
		}
	}
	return zero
}

// ready is Watt's readiness: every application has a ready worker, and
// no ready worker's custom readiness check fails (a worker that says it
// cannot serve still gets its share of the connections). Workers that are
// starting or restarting do not count against it while another serves.
func ready(ctx context.Context, rt Runtime) verdict {
	readyApps := map[string]bool{}
	reasons := map[string][]string{}
	checkFailed := map[string][]string{}
	var passed, failed *config.ProbeAnswer
	for _, r := range rt.Readiness(ctx, checkTimeout) {
		var custom *config.ProbeAnswer
		if r.Checked && (r.StatusCode != 0 || r.Body != "") {
			custom = &config.ProbeAnswer{StatusCode: r.StatusCode, Body: r.Body}
		}
		if r.Ready {
			readyApps[r.App] = true
			passed = firstAnswer(passed, custom)
		} else {
			reasons[r.App] = append(reasons[r.App], fmt.Sprintf("worker %d: %s", r.Worker, r.Reason))
			failed = firstAnswer(failed, custom)
			if r.CheckFailed {
				checkFailed[r.App] = append(checkFailed[r.App], fmt.Sprintf("worker %d: %s", r.Worker, r.Reason))
			}
		}
	}
	var missing []string
	for _, a := range rt.Apps() {
		switch {
		case !readyApps[a.ID]:
			missing = append(missing, fmt.Sprintf("application %q has no ready worker (%s)", a.ID, strings.Join(reasons[a.ID], "; ")))
		case len(checkFailed[a.ID]) > 0:
			missing = append(missing, fmt.Sprintf("application %q has a worker whose readiness check fails (%s)", a.ID, strings.Join(checkFailed[a.ID], "; ")))
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		v := verdict{detail: strings.Join(missing, "\n")}
		if failed != nil {
			v.custom = *failed
		}
		return v
	}
	v := verdict{ok: true}
	if passed != nil {
		v.custom = *passed
	}
	return v
}

// firstAnswer keeps the first answer an application's check gave.
func firstAnswer(first, next *config.ProbeAnswer) *config.ProbeAnswer {
	if first != nil {
		return first
	}
	return next
}

// live is the liveness probe: the runtime runs and every application has
// a ready worker. Watt also runs the custom health checks here; wattd
// already runs them itself and replaces a worker that fails them.
func live(rt Runtime) verdict {
	if st := rt.Status(); st.State == "stopping" {
		return verdict{detail: "runtime is stopping"}
	}
	var missing []string
	for _, a := range rt.Apps() {
		ok := false
		for _, w := range a.Workers {
			ok = ok || w.State == supervisor.StateReady.String()
		}
		if !ok {
			missing = append(missing, fmt.Sprintf("application %q has no ready worker", a.ID))
		}
	}
	if len(missing) > 0 {
		return verdict{detail: strings.Join(missing, "\n")}
	}
	return verdict{ok: true}
}
