package config

import (
	"strings"
	"testing"
)

// TestSchedulerJobs: the jobs are read with Watt's defaults, and each
// wrong entry is named by its JSON path.
func TestSchedulerJobs(t *testing.T) {
	good := `{
  "applications": [{"id": "web", "path": "./web"}],
  "scheduler": [
    {"name": "a", "cron": "*/5 * * * *", "callbackUrl": "http://web.plt.local/a"},
    {"name": "b", "cron": "0 0 * * *", "callbackUrl": "https://example.com/b", "method": "POST", "body": {"x": [1, 2]}, "maxRetries": 0},
    {"name": "c", "cron": "@daily", "callbackUrl": "http://web.plt.local/c", "method": "PUT", "body": "raw text", "headers": {"content-type": "text/plain"}},
    {"name": "off", "cron": "* * * * *", "callbackUrl": "http://web.plt.local/", "enabled": "false"}
  ]
}`
	dir := writeProject(t, map[string]string{"watt.json": good, "web/index.js": ""})
	cfg, err := Load(dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Scheduler) != 3 {
		t.Fatalf("%d jobs, want 3 (off is disabled): %+v", len(cfg.Scheduler), cfg.Scheduler)
	}
	a, b, c := cfg.Scheduler[0].Job(), cfg.Scheduler[1].Job(), cfg.Scheduler[2].Job()
	if a.Method != "GET" || a.HasBody || a.MaxRetries != 3 || a.Schedule == nil {
		t.Errorf("a: %+v", a)
	}
	if b.Method != "POST" || b.Body != `{"x":[1,2]}` || b.Headers["content-type"] != "application/json" || b.MaxRetries != 0 {
		t.Errorf("b: %+v", b)
	}
	if c.Body != "raw text" || c.Headers["content-type"] != "text/plain" || len(c.Headers) != 1 {
		t.Errorf("c: %+v", c)
	}

	bad := `{
  "applications": [{"id": "web", "path": "./web"}],
  "scheduler": [
    {"name": "a", "cron": "* * *", "callbackUrl": "ftp://x/"},
    {"name": "a", "cron": "* * * * *", "callbackUrl": "http://web.plt.local/", "maxRetries": 1.5, "headers": {"bad name": "x"}, "body": [1, 2]},
    {"cron": "* * * * *", "callbackUrl": "http://web.plt.local/"}
  ]
}`
	_, err = Load(writeProject(t, map[string]string{"watt.json": bad, "web/index.js": ""}), "", nil)
	if err == nil {
		t.Fatal("loaded")
	}
	for _, want := range []string{
		"/scheduler/0/cron", "too few fields",
		"/scheduler/0/callbackUrl", "not an http:// or https:// URL",
		"/scheduler/1/name", `"a" is the name of /scheduler/0 too`,
		"/scheduler/1/maxRetries",
		"/scheduler/1/headers/bad name",
		"/scheduler/1/body",
		`/scheduler/2: missing required key "name"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %q:\n%v", want, err)
		}
	}
}
