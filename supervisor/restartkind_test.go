package supervisor

import (
	"slices"
	"testing"
)

func TestRestartKind(t *testing.T) {
	for reason, want := range map[string]string{
		"exit status 1":                                     "exit",
		"exit status 1; last output: boom":                  "exit",
		"signal: killed":                                    "signal",
		"oom (memory limit 64.0 MiB)":                       "oom",
		"memory (70.0 MiB used, limit 64.0 MiB; no cgroup)": "memory",
		"not ready within startTimeout (30s)":               "start_timeout",
		"control channel: bad frame":                        "control_channel",
		"something else":                                    "other",
	} {
		got := restartKind(reason)
		if got != want {
			t.Errorf("restartKind(%q) = %q, want %q", reason, got, want)
		}
		if !slices.Contains(RestartKinds, got) {
			t.Errorf("%q is not in RestartKinds", got)
		}
	}
}
