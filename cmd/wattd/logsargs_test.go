package main

import (
	"strings"
	"testing"

	"github.com/wattd/wattd/supervisor/admin"
)

func TestParseLogsArgs(t *testing.T) {
	good := []struct {
		args []string
		want logsArgs
	}{
		{nil, logsArgs{q: admin.LogQuery{Worker: -1, Lines: admin.DefaultLogLines}}},
		{[]string{"web", "-f"}, logsArgs{q: admin.LogQuery{App: "web", Worker: -1, Lines: admin.DefaultLogLines, Follow: true}}},
		{[]string{"-n", "5", "web", "--worker", "1"}, logsArgs{q: admin.LogQuery{App: "web", Worker: 1, Lines: 5}}},
		{[]string{"web", "-n0", "-w2", "--json"}, logsArgs{q: admin.LogQuery{App: "web", Worker: 2, Lines: 0}, json: true}},
		{[]string{"--lines=7", "--worker=0", "api", "--follow", "--socket", "/x.sock"}, logsArgs{q: admin.LogQuery{App: "api", Worker: 0, Lines: 7, Follow: true}, socket: "/x.sock"}},
		{[]string{"--help"}, logsArgs{q: admin.LogQuery{Worker: -1, Lines: admin.DefaultLogLines}, help: true}},
	}
	for _, c := range good {
		got, err := parseLogs(c.args)
		if err != nil || got != c.want {
			t.Errorf("%q: %+v, %v; want %+v", c.args, got, err, c.want)
		}
	}
	bad := map[string][]string{
		"one APP at most":          {"a", "b"},
		"-n needs a value":         {"web", "-n"},
		`-n "x": want a number`:    {"-n", "x"},
		`--worker "-1": want a`:    {"web", "--worker=-1"},
		"--worker needs APP":       {"-w", "1"},
		"unknown option --tail":    {"--tail"},
		`--lines "": want a numbe`: {"--lines="},
	}
	for says, args := range bad {
		if _, err := parseLogs(args); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("%q: %v, want an error saying %q", args, err, says)
		}
	}
}
