package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/wattd/wattd/supervisor/scheduler"
)

// SchedulerJob is one entry of Watt's "scheduler": an HTTP request sent at
// each time Cron allows (UTC).
type SchedulerJob struct {
	Name        string
	Cron        string
	CallbackURL string
	Method      string
	Headers     map[string]string
	// Body is what is sent; HasBody is false for a GET or HEAD without
	// one. JSONBody: it is the JSON of the object given (or of {}, Watt's
	// default), sent as application/json unless Headers say otherwise.
	Body              string
	HasBody, JSONBody bool
	MaxRetries        int
	// schedule is Cron, parsed when the file was loaded.
	schedule *scheduler.Schedule
}

// Job is j as the scheduler runs it.
func (j SchedulerJob) Job() scheduler.Job {
	headers := map[string]string{}
	typed := false
	for k, v := range j.Headers {
		headers[k] = v
		typed = typed || strings.EqualFold(k, "content-type")
	}
	if j.JSONBody && !typed {
		headers["content-type"] = "application/json"
	}
	return scheduler.Job{Name: j.Name, Cron: j.Cron, Schedule: j.schedule, URL: j.CallbackURL, Method: j.Method, Headers: headers,
		Body: j.Body, HasBody: j.HasBody, MaxRetries: j.MaxRetries}
}

type rawSchedulerJob struct {
	Enabled     json.RawMessage   `json:"enabled"`
	Name        *string           `json:"name"`
	Cron        *string           `json:"cron"`
	CallbackURL *string           `json:"callbackUrl"`
	Method      *string           `json:"method"`
	Headers     map[string]string `json:"headers"`
	Body        json.RawMessage   `json:"body"`
	MaxRetries  *json.Number      `json:"maxRetries"`
}

// buildScheduler reads "scheduler": the jobs that are enabled, each
// checked as Watt checks it at start (a name, a cron expression it can
// read, a callbackUrl), with the problems named by their JSON path.
func buildScheduler(raw json.RawMessage) ([]SchedulerJob, []issue) {
	const ptr = "/scheduler"
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, []issue{issuef(ptr, "expected an array of jobs")}
	}
	var jobs []SchedulerJob
	var problems []issue
	seen := map[string]string{}
	for i, item := range items {
		at := fmt.Sprintf("%s/%d", ptr, i)
		var r rawSchedulerJob
		if p := decodeNumbers(at, item, &r); p != nil {
			problems = append(problems, p...)
			continue
		}
		on, p := enabledAt(at+"/enabled", r.Enabled)
		if p != nil {
			problems = append(problems, p...)
			continue
		}
		j := SchedulerJob{Method: "GET", MaxRetries: 3, Headers: r.Headers}
		switch {
		case r.Name == nil || strings.TrimSpace(*r.Name) == "":
			problems = append(problems, issuef(at+"/name", "a job needs a name"))
		default:
			j.Name = *r.Name
			if first, dup := seen[j.Name]; dup && on {
				problems = append(problems, issuef(at+"/name", "%q is the name of %s too: job names must be unique", j.Name, first))
			} else if on {
				seen[j.Name] = at
			}
		}
		if r.Cron == nil {
			problems = append(problems, issuef(at+"/cron", "a job needs a cron expression"))
		} else if sched, err := scheduler.Parse(*r.Cron); err != nil {
			problems = append(problems, issuef(at+"/cron", "%q: %v", *r.Cron, err))
		} else {
			j.Cron, j.schedule = *r.Cron, sched
		}
		if r.CallbackURL == nil {
			problems = append(problems, issuef(at+"/callbackUrl", "a job needs the URL to call"))
		} else if msg := checkHTTPURL(*r.CallbackURL); msg != "" {
			problems = append(problems, issuef(at+"/callbackUrl", "%s (an application's is http://ID.plt.local/PATH)", msg))
		} else {
			j.CallbackURL = *r.CallbackURL
		}
		if r.Method != nil {
			m := strings.ToUpper(*r.Method)
			if !slices.Contains([]string{"GET", "POST", "PUT", "PATCH", "DELETE"}, m) {
				problems = append(problems, issuef(at+"/method", "%q: expected GET, POST, PUT, PATCH or DELETE", *r.Method))
			}
			j.Method = m
		}
		problems = append(problems, checkHeaders(at+"/headers", r.Headers)...)
		switch body := strings.TrimSpace(string(r.Body)); {
		case body == "" || body == "null":
			// Watt sends the JSON of {}; not on a GET, which has no body.
			if j.Method != "GET" {
				j.Body, j.HasBody, j.JSONBody = "{}", true, true
			}
		case body[0] == '"':
			_ = json.Unmarshal(r.Body, &j.Body)
			j.HasBody = true
		case body[0] == '{':
			var compact bytes.Buffer
			if err := json.Compact(&compact, r.Body); err != nil {
				problems = append(problems, issuef(at+"/body", "%v", err))
			}
			j.Body, j.HasBody, j.JSONBody = compact.String(), true, true
		default:
			problems = append(problems, issuef(at+"/body", "expected a string or an object, got %s", body))
		}
		if r.MaxRetries != nil {
			n, err := r.MaxRetries.Int64()
			if err != nil || n < 0 || n > 100 {
				problems = append(problems, issuef(at+"/maxRetries", "%s: expected a whole number of attempts from 0 to 100", r.MaxRetries))
			} else {
				j.MaxRetries = int(n)
			}
		}
		if on {
			jobs = append(jobs, j)
		}
	}
	return jobs, problems
}
