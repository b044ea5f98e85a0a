package supervisor

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wattd/wattd/supervisor/config"
)

// scalerRuntime is a runtime without processes whose apps have the given
// worker counts and scaling, for the scaler's decisions.
func scalerRuntime(t *testing.T, total int, apps map[string]struct {
	n     int
	scale config.Scale
}) (*Runtime, *scaler) {
	t.Helper()
	states := map[string][]State{}
	for id, a := range apps {
		for range a.n {
			states[id] = append(states[id], StateReady)
		}
	}
	rt := testRuntime(states)
	for id, a := range apps {
		rt.byID[id].spec.Store(&appSpec{conf: config.Application{ID: id, Workers: a.n, Scale: a.scale}})
	}
	sc := newScaler(rt, &config.Config{Scaler: config.Scaler{
		Dynamic: true, Total: total, TimeWindow: 10 * time.Second, ScaleDownTimeWindow: time.Minute,
		Cooldown: time.Minute, ScaleInterval: time.Minute,
	}})
	return rt, sc
}

func (sc *scaler) feed(a *app, elu float64, at time.Time) {
	for _, s := range a.slotList() {
		sc.samples[s] = append(sc.samples[s], eluSample{at: at, elu: elu})
	}
}

func TestScalerDecisions(t *testing.T) {
	dyn := config.Scale{Dynamic: true, Minimum: 1, Maximum: 3, ScaleUpELU: 0.8, ScaleDownELU: 0.2}
	type appDef = struct {
		n     int
		scale config.Scale
	}
	now := time.Now()

	t.Run("the busiest application above scaleUpELU gets one worker", func(t *testing.T) {
		rt, sc := scalerRuntime(t, 8, map[string]appDef{"api": {1, dyn}, "web": {1, dyn}, "fixed": {1, config.Scale{}}})
		sc.feed(rt.byID["api"], 0.85, now.Add(-time.Second))
		sc.feed(rt.byID["web"], 0.95, now.Add(-time.Second))
		sc.feed(rt.byID["fixed"], 1, now.Add(-time.Second))
		got := sc.decide(now)
		if len(got) != 1 || got[0].a.id != "web" || got[0].to != 2 || !strings.Contains(got[0].reason, "above scaleUpELU 0.8") {
			t.Fatalf("decisions %+v, want web 1 -> 2", got)
		}
	})
	t.Run("idle applications above their minimum lose one worker each", func(t *testing.T) {
		rt, sc := scalerRuntime(t, 8, map[string]appDef{"api": {3, dyn}, "web": {1, dyn}})
		sc.feed(rt.byID["api"], 0.05, now.Add(-30*time.Second))
		sc.feed(rt.byID["web"], 0.05, now.Add(-30*time.Second))
		got := sc.decide(now)
		if len(got) != 1 || got[0].a.id != "api" || got[0].to != 2 || !strings.Contains(got[0].reason, "below scaleDownELU 0.2") {
			t.Fatalf("decisions %+v, want api 3 -> 2 only (web is at its minimum)", got)
		}
	})
	t.Run("reports older than the window do not count", func(t *testing.T) {
		rt, sc := scalerRuntime(t, 8, map[string]appDef{"api": {1, dyn}})
		sc.feed(rt.byID["api"], 1, now.Add(-20*time.Second)) // outside the 10 s scale-up window
		if got := sc.decide(now); len(got) != 0 {
			t.Fatalf("decisions %+v from stale reports", got)
		}
	})
	t.Run("no scale up at the total or the maximum", func(t *testing.T) {
		rt, sc := scalerRuntime(t, 2, map[string]appDef{"api": {1, dyn}, "web": {1, dyn}})
		sc.feed(rt.byID["api"], 1, now.Add(-time.Second))
		if got := sc.decide(now); len(got) != 0 {
			t.Fatalf("decisions %+v beyond total 2", got)
		}
		rt, sc = scalerRuntime(t, 8, map[string]appDef{"api": {3, dyn}})
		sc.feed(rt.byID["api"], 1, now.Add(-time.Second))
		if got := sc.decide(now); len(got) != 0 {
			t.Fatalf("decisions %+v beyond the maximum 3", got)
		}
	})
	t.Run("bounds first, and nothing within the cooldown", func(t *testing.T) {
		_, sc := scalerRuntime(t, 8, map[string]appDef{"api": {5, dyn}})
		got := sc.decide(now)
		if len(got) != 1 || got[0].to != 3 || !strings.Contains(got[0].reason, "above its maximum") {
			t.Fatalf("decisions %+v, want api 5 -> 3", got)
		}
		sc.lastScale = now.Add(-time.Second)
		if got := sc.decide(now); len(got) != 0 {
			t.Fatalf("decisions %+v within the cooldown", got)
		}
	})
}

// TestImpossibleStatsAreBounded: a worker that reports a utilisation no
// process can have (1.7e308, whose average over a window overflows to
// +Inf) neither breaks the JSON of ctl ps (json cannot encode +Inf) nor
// makes the scaler read more than full use; wattd says so once.
func TestImpossibleStatsAreBounded(t *testing.T) {
	tr := startRuntime(t, func(c *config.Config) {
		c.Scaler = config.Scaler{Dynamic: true, Total: 2, TimeWindow: time.Second, ScaleDownTimeWindow: time.Minute,
			Cooldown: time.Minute, ScaleInterval: 100 * time.Millisecond}
		c.Applications[0].Scale = config.Scale{Dynamic: true, Minimum: 1, Maximum: 1, ScaleUpELU: 0.8, ScaleDownELU: 0.2}
		c.Applications[0].Env["WATTD_STATS_INTERVAL_MS"] = "50"
	}, testApp{id: "liar", behaviour: "elu:1.7e308"})
	tr.waitReady("liar", 0)
	var apps []AppStatus
	eventually(t, "two reports of the liar", func() bool {
		apps = tr.Apps()
		return apps[0].Scaling != nil && apps[0].Scaling.ELU > 0 && tr.logs.FilterMessageSnippet("impossible figures").Len() > 0
	})
	if _, err := json.Marshal(apps); err != nil {
		t.Fatalf("ctl ps cannot be answered: %v", err)
	}
	if elu := apps[0].Scaling.ELU; elu != 1 {
		t.Errorf("scaler's utilisation %v, want 1", elu)
	}
	if elu := apps[0].Workers[0].ELU; elu != 1 {
		t.Errorf("worker's utilisation %v, want 1", elu)
	}
	// More reports, each as impossible: still said once.
	seen := map[time.Time]bool{}
	eventually(t, "three more reports", func() bool {
		s := tr.slot("liar", 0)
		s.mu.Lock()
		w := s.cur
		s.mu.Unlock()
		if w == nil {
			return false
		}
		_, at := w.Stats()
		seen[at] = true
		return len(seen) > 3
	})
	if n := tr.logs.FilterMessageSnippet("impossible figures").Len(); n != 1 {
		t.Errorf("said %d times, want once", n)
	}
}
