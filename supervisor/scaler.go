package supervisor

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wattd/wattd/supervisor/config"
)

// The dynamic scaler (Watt's dynamic workers): it adds and removes workers
// of the applications whose config.Scale is dynamic, from the event-loop
// utilisation their workers report on the control channel.
//
// Every second it records each ready worker's latest ELU report (a worker
// younger than the grace period is not counted). A check runs every
// scaleInterval, and at once when a worker reports more than its app's
// scaleUpELU; none runs within cooldown of the last scaling, nor while a
// reload or another scaling is applied. A check, as Watt's:
//
//   - brings an application below its minimum up to it, one above its
//     maximum down to it;
//   - removes one worker of each application (above its minimum) whose
//     average ELU over scaleDownTimeWindow is below scaleDownELU;
//   - adds one worker to the one application (below its maximum) with the
//     highest average ELU over timeWindow above scaleUpELU, while the
//     runtime has fewer than total workers.
//
// The average of an application is the mean of its workers' means. Every
// decision is logged with its reason and shown by `ctl ps --json`.

// sampleEvery is how often the scaler reads the workers' reports.
const sampleEvery = time.Second

// ScaleDecision is a change of an application's worker count.
type ScaleDecision struct {
	At     time.Time `json:"at"`
	From   int       `json:"from"`
	To     int       `json:"to"`
	Reason string    `json:"reason"`
}

// ScalingStatus is an application's dynamic scaling in `ctl ps --json`.
type ScalingStatus struct {
	Dynamic bool `json:"dynamic"`
	Minimum int  `json:"minimum,omitempty"`
	Maximum int  `json:"maximum,omitempty"`
	// ELU is the application's average over the scale-up window, as the
	// last check saw it.
	ELU  float64        `json:"elu"`
	Last *ScaleDecision `json:"lastDecision,omitempty"`
}

type eluSample struct {
	at  time.Time
	elu float64
}

type scaler struct {
	rt  *Runtime
	log *zap.Logger

	mu        sync.Mutex // guards the fields below
	cfg       config.Scaler
	samples   map[*slot][]eluSample
	lastScale time.Time
	last      map[string]ScaleDecision // by app id
	elu       map[string]float64       // by app id, from the last check
}

func newScaler(rt *Runtime, cfg *config.Config) *scaler {
	return &scaler{
		rt:      rt,
		log:     rt.log.Named("scaler"),
		cfg:     cfg.Scaler,
		samples: map[*slot][]eluSample{},
		last:    map[string]ScaleDecision{},
		elu:     map[string]float64{},
	}
}

// configure takes the scaler settings of a reloaded configuration.
func (sc *scaler) configure(cfg *config.Config) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.cfg = cfg.Scaler
}

// clamp bounds a worker count by a dynamic application's minimum and
// maximum.
func (sc *scaler) clamp(a *app, n int) int {
	s := a.sp().conf.Scale
	if !s.Dynamic {
		return n
	}
	return min(max(n, s.Minimum), s.Maximum)
}

// record remembers a change of a's worker count, whoever made it.
func (sc *scaler) record(a *app, from, to int, reason string) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.last[a.id] = ScaleDecision{At: time.Now(), From: from, To: to, Reason: reason}
}

// status is a's scaling for `ctl ps --json`.
func (sc *scaler) status(a *app) *ScalingStatus {
	s := a.sp().conf.Scale
	sc.mu.Lock()
	defer sc.mu.Unlock()
	st := &ScalingStatus{Dynamic: s.Dynamic, ELU: sc.elu[a.id]}
	if s.Dynamic {
		st.Minimum, st.Maximum = s.Minimum, s.Maximum
	}
	if d, ok := sc.last[a.id]; ok {
		st.Last = &d
	} else if !s.Dynamic {
		return nil
	}
	return st
}

// run samples and checks until the runtime stops.
func (sc *scaler) run() {
	sample := time.NewTicker(sampleEvery)
	defer sample.Stop()
	lastCheck := time.Now()
	for {
		select {
		case <-sc.rt.stopping:
			return
		case <-sample.C:
			sc.mu.Lock()
			every := sc.cfg.ScaleInterval
			sc.mu.Unlock()
			if sc.sample() || time.Since(lastCheck) >= every {
				lastCheck = time.Now()
				sc.check()
			}
		}
	}
}

// sample records the ready workers' reports; it returns whether one of
// them is above its application's scaleUpELU.
func (sc *scaler) sample() (hot bool) {
	now := time.Now()
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if !sc.cfg.Dynamic {
		return false
	}
	keep := sc.cfg.ScaleDownTimeWindow
	if sc.cfg.TimeWindow > keep {
		keep = sc.cfg.TimeWindow
	}
	seen := map[*slot]bool{}
	for _, a := range sc.rt.appList() {
		scale := a.sp().conf.Scale
		if !scale.Dynamic {
			continue
		}
		for _, s := range a.slotList() {
			seen[s] = true
			s.mu.Lock()
			st, w := s.state, s.cur
			s.mu.Unlock()
			if st != StateReady || w == nil || s.removing.Load() || now.Sub(w.Started()) < sc.cfg.GracePeriod {
				continue
			}
			stats, at := w.Stats()
			if at.IsZero() {
				continue
			}
			list := sc.samples[s]
			if n := len(list); n > 0 && !at.After(list[n-1].at) {
				continue // no new report since the last sample
			}
			list = append(list, eluSample{at: at, elu: stats.ELU})
			for len(list) > 0 && now.Sub(list[0].at) > keep {
				list = list[1:]
			}
			sc.samples[s] = list
			if stats.ELU > scale.ScaleUpELU {
				hot = true
			}
		}
	}
	for s := range sc.samples {
		if !seen[s] {
			delete(sc.samples, s)
		}
	}
	return hot
}

// average is the mean of the means of slots' samples newer than window;
// ok is false when none has any.
func (sc *scaler) average(slots []*slot, window time.Duration, now time.Time) (avg float64, ok bool) {
	sum, n := 0.0, 0
	for _, s := range slots {
		ws, c := 0.0, 0
		for _, x := range sc.samples[s] {
			if now.Sub(x.at) <= window {
				ws += x.elu
				c++
			}
		}
		if c > 0 {
			sum += ws / float64(c)
			n++
		}
	}
	if n == 0 {
		return 0, false
	}
	return sum / float64(n), true
}

// plan is one check's decisions, by application.
type planned struct {
	a      *app
	to     int
	reason string
}

func (sc *scaler) decide(now time.Time) []planned {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if !sc.cfg.Dynamic || now.Sub(sc.lastScale) < sc.cfg.Cooldown {
		return nil
	}
	type appInfo struct {
		a        *app
		scale    config.Scale
		n        int
		up, down float64
		hasUp    bool
		hasDown  bool
	}
	var infos []appInfo
	total := 0
	for _, a := range sc.rt.appList() {
		slots := a.slotList()
		total += len(slots)
		scale := a.sp().conf.Scale
		if !scale.Dynamic {
			continue
		}
		in := appInfo{a: a, scale: scale, n: len(slots)}
		in.up, in.hasUp = sc.average(slots, sc.cfg.TimeWindow, now)
		in.down, in.hasDown = sc.average(slots, sc.cfg.ScaleDownTimeWindow, now)
		sc.elu[a.id] = in.up
		infos = append(infos, in)
	}
	var out []planned
	decided := map[*app]bool{}
	for _, in := range infos {
		switch {
		case in.n < in.scale.Minimum:
			out = append(out, planned{in.a, in.scale.Minimum, fmt.Sprintf("below its minimum of %d workers", in.scale.Minimum)})
			total += in.scale.Minimum - in.n
		case in.n > in.scale.Maximum:
			out = append(out, planned{in.a, in.scale.Maximum, fmt.Sprintf("above its maximum of %d workers", in.scale.Maximum)})
			total -= in.n - in.scale.Maximum
		case in.n > in.scale.Minimum && in.hasDown && in.down < in.scale.ScaleDownELU:
			out = append(out, planned{in.a, in.n - 1, fmt.Sprintf("average ELU %s over %s is below scaleDownELU %s",
				ratio(in.down), sc.cfg.ScaleDownTimeWindow, ratio(in.scale.ScaleDownELU))})
			total--
		default:
			continue
		}
		decided[in.a] = true
	}
	if total < sc.cfg.Total {
		sort.SliceStable(infos, func(i, j int) bool {
			if infos[i].up != infos[j].up {
				return infos[i].up > infos[j].up
			}
			return infos[i].n < infos[j].n
		})
		for _, in := range infos {
			if decided[in.a] || in.n >= in.scale.Maximum || !in.hasUp || in.up <= in.scale.ScaleUpELU {
				continue
			}
			out = append(out, planned{in.a, in.n + 1, fmt.Sprintf("average ELU %s over %s is above scaleUpELU %s",
				ratio(in.up), sc.cfg.TimeWindow, ratio(in.scale.ScaleUpELU))})
			break
		}
	}
	return out
}

// check decides and applies; it gives way to a reload or a scaling in
// progress, and tries again at the next check.
func (sc *scaler) check() {
	release, err := sc.rt.tryChange("dynamic scaling")
	if err != nil {
		return
	}
	defer release()
	now := time.Now()
	plan := sc.decide(now)
	if len(plan) == 0 {
		return
	}
	for _, p := range plan {
		from := len(p.a.slotList())
		sc.log.Info("scaling decision", zap.String("app", p.a.id), zap.Int("from", from), zap.Int("to", p.to), zap.String("reason", p.reason))
		ctx, cancel := context.WithTimeout(context.Background(), sc.rt.cfg.StartTimeout+sc.rt.cfg.GracefulShutdown.Application+time.Minute)
		if err := sc.rt.scaleTo(ctx, p.a, p.to, "dynamic: "+p.reason); err != nil {
			sc.log.Error("scaling failed", zap.String("app", p.a.id), zap.Error(err))
		}
		cancel()
	}
	sc.mu.Lock()
	sc.lastScale = time.Now()
	// Reports from before the change describe the old worker count.
	sc.samples = map[*slot][]eluSample{}
	sc.mu.Unlock()
}
