package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wattd/wattd/supervisor/procnet"
)

// cpuFamilies are the CPU figures Watt exports for each Node worker: its
// thread's CPU time and usage (thread_cpu_*), and the host's CPU usage
// (process_cpu_percent_usage, which despite its name Watt computes from
// every CPU of the host). A Watt worker measures them on its own thread;
// wattd reads them from /proc at each collection, on the worker process's
// main thread (the one that runs the event loop; its thread id is the
// process id), so the worker spends nothing on them.
//
// The two percentages cover the time since the previous collection (a
// scrape or an OTLP push), as Watt's cover the time since the previous
// scrape; a worker's first one covers its life so far, the host's first
// one the time since boot.
type cpuFamilies struct {
	user, system, total, percent, host *prometheus.Desc

	mu       sync.Mutex
	threads  map[int]threadSample // by pid
	lastHost procnet.HostCPU
}

type threadSample struct {
	at  time.Time
	cpu time.Duration
}

// forgetAfter is how long a worker's sample is kept without being read
// again: its process is gone or its slot is.
const forgetAfter = 10 * time.Minute

func newCPUFamilies(d func(name, help string, labels []string) *prometheus.Desc) *cpuFamilies {
	w := []string{appLabel, workerLabel}
	return &cpuFamilies{
		// Watt's name; the figure is the user time alone, as Watt's.
		user:    d("thread_cpu_user_system_seconds_total", "User CPU time the worker's main thread spent, in seconds.", w),
		system:  d("thread_cpu_system_seconds_total", "System CPU time the worker's main thread spent, in seconds.", w),
		total:   d("thread_cpu_seconds_total", "User and system CPU time the worker's main thread spent, in seconds.", w),
		percent: d("thread_cpu_percent_usage", "CPU usage of the worker's main thread since the previous collection, in percent of one CPU.", w),
		host:    d("process_cpu_percent_usage", "CPU usage of the whole host since the previous collection, in percent of all its CPUs.", w),
		threads: map[int]threadSample{},
	}
}

func (f *cpuFamilies) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{f.user, f.system, f.total, f.percent, f.host} {
		ch <- d
	}
}

// hostPercent reads the host's CPU usage since the previous call; ok is
// false when /proc/stat cannot be read. Called once per collection, it
// also forgets the samples of workers gone for a while.
func (f *cpuFamilies) hostPercent() (float64, bool) {
	now, ok := procnet.ReadHostCPU()
	if !ok {
		return 0, false
	}
	f.mu.Lock()
	prev := f.lastHost
	f.lastHost = now
	for p, s := range f.threads {
		if time.Since(s.at) > forgetAfter {
			delete(f.threads, p)
		}
	}
	f.mu.Unlock()
	if now.Total <= prev.Total || now.Idle < prev.Idle {
		// Two collections within one tick: the previous figure stands
		// for it rather than a division by zero.
		prev = procnet.HostCPU{}
	}
	total, idle := float64(now.Total-prev.Total), float64(now.Idle-prev.Idle)
	if total == 0 {
		return 0, false
	}
	return 100 * (1 - idle/total), true
}

// collectWorker exports one Node worker's figures; uptime is its
// process's age, the span of its first percentage. host is the host's
// percentage of this collection, exported when hostOK.
func (f *cpuFamilies) collectWorker(ch chan<- prometheus.Metric, app, id string, pid int, uptime float64, host float64, hostOK bool) {
	if hostOK {
		ch <- prometheus.MustNewConstMetric(f.host, prometheus.GaugeValue, host, app, id)
	}
	st, ok := procnet.ReadThreadStat(pid, pid)
	if !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(f.user, prometheus.CounterValue, st.User.Seconds(), app, id)
	ch <- prometheus.MustNewConstMetric(f.system, prometheus.CounterValue, st.System.Seconds(), app, id)
	ch <- prometheus.MustNewConstMetric(f.total, prometheus.CounterValue, st.CPU.Seconds(), app, id)
	now := time.Now()
	f.mu.Lock()
	prev, seen := f.threads[pid]
	f.threads[pid] = threadSample{at: now, cpu: st.CPU}
	f.mu.Unlock()
	var used, span float64
	switch {
	case seen && st.CPU >= prev.cpu && now.Sub(prev.at) > 0:
		used, span = (st.CPU - prev.cpu).Seconds(), now.Sub(prev.at).Seconds()
	default:
		used, span = st.CPU.Seconds(), uptime
	}
	if span > 0 {
		ch <- prometheus.MustNewConstMetric(f.percent, prometheus.GaugeValue, 100*used/span, app, id)
	}
}
