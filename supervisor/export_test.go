package supervisor

import (
	"sort"
	"testing"
)

// StartTestRuntime runs a runtime for the package's external tests (the
// admin API over a real runtime): apps maps each application id to the
// behaviours of its workers (see testWorkerMain); the first id in sorted
// order is the entrypoint. It stops when the test ends.
func StartTestRuntime(t *testing.T, apps map[string]string) *Runtime {
	t.Helper()
	ids := make([]string, 0, len(apps))
	for id := range apps {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var tas []testApp
	for _, id := range ids {
		tas = append(tas, testApp{id: id, behaviour: apps[id]})
	}
	return startRuntime(t, nil, tas...).Runtime
}
