package metrics

import (
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wattd/wattd/ipc"
)

// maxTypes is the most types of handles, requests or resources one
// worker's series name, the preload's bound.
const maxTypes = 64

// processFamilies are the Node.js process metrics Watt exports for each
// worker (prom-client's defaults, under their names and labels), from what the worker reports of its
// process with metrics on (ipc.NodeProcess).
type processFamilies struct {
	external                          *prometheus.Desc
	spaceTotal, spaceUsed, spaceAvail *prometheus.Desc
	handles, handlesTotal             *prometheus.Desc
	requests, requestsTotal           *prometheus.Desc
	resources, resourcesTotal         *prometheus.Desc
	// loopResources is Watt's own name for resourcesTotal, which its
	// dashboards read.
	loopResources *prometheus.Desc
}

func newProcessFamilies(d func(name, help string, labels []string) *prometheus.Desc) processFamilies {
	w := []string{appLabel, workerLabel}
	ws := []string{appLabel, workerLabel, "space"}
	wt := []string{appLabel, workerLabel, "type"}
	return processFamilies{
		external:       d("nodejs_external_memory_bytes", "Memory of C++ objects bound to the worker's JavaScript objects, in bytes, as last reported.", w),
		spaceTotal:     d("nodejs_heap_space_size_total_bytes", "Size of the V8 heap space, in bytes, as last reported.", ws),
		spaceUsed:      d("nodejs_heap_space_size_used_bytes", "Bytes in use in the V8 heap space, as last reported.", ws),
		spaceAvail:     d("nodejs_heap_space_size_available_bytes", "Bytes still free in the V8 heap space, as last reported.", ws),
		handles:        d("nodejs_active_handles", "Handles keeping the worker's process alive, by class name, as last reported.", wt),
		handlesTotal:   d("nodejs_active_handles_total", "Handles keeping the worker's process alive, as last reported.", w),
		requests:       d("nodejs_active_requests", "libuv requests in flight in the worker, by class name, as last reported.", wt),
		requestsTotal:  d("nodejs_active_requests_total", "libuv requests in flight in the worker, as last reported.", w),
		resources:      d("nodejs_active_resources", "Resources keeping the worker's event loop alive, by type, as last reported.", wt),
		resourcesTotal: d("nodejs_active_resources_total", "Resources keeping the worker's event loop alive, as last reported.", w),
		loopResources:  d("active_resources_event_loop", "Number of active resources keeping the event loop alive (nodejs_active_resources_total, under Watt's name), as last reported.", w),
	}
}

func (f *processFamilies) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{f.external, f.spaceTotal, f.spaceUsed, f.spaceAvail,
		f.handles, f.handlesTotal, f.requests, f.requestsTotal, f.resources, f.resourcesTotal, f.loopResources} {
		ch <- d
	}
}

// collectWorker sends a worker's series; nothing before its first
// report of them. A label value the registry refuses (a type name that
// is not UTF-8) leaves that one series out, not the scrape.
func (f *processFamilies) collectWorker(ch chan<- prometheus.Metric, app, id string, p *ipc.NodeProcess) {
	if p == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		if m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, v, labels...); err == nil {
			ch <- m
		}
	}
	gauge(f.external, float64(p.External), app, id)
	seen := map[string]bool{}
	for _, s := range p.HeapSpaces {
		if len(seen) == maxTypes {
			break // V8 has about ten; a worker that sends more is lying
		}
		if seen[s.Space] {
			continue // a registry takes one series per label set
		}
		seen[s.Space] = true
		gauge(f.spaceTotal, float64(s.Size), app, id, s.Space)
		gauge(f.spaceUsed, float64(s.Used), app, id, s.Space)
		gauge(f.spaceAvail, float64(s.Available), app, id, s.Space)
	}
	// The total is the worker's own count, which takes in the types past
	// the bound; a worker that sends none has the sum of its types. Only
	// the first maxTypes types (by name) are exported: the preload sends
	// no more, and a worker that does cannot swell the scrape.
	byType := func(d, total *prometheus.Desc, counts map[string]int, all int) float64 {
		n := 0
		for i, t := range slices.Sorted(maps.Keys(counts)) {
			n += counts[t]
			if i < maxTypes {
				gauge(d, float64(counts[t]), app, id, t)
			}
		}
		gauge(total, float64(max(n, all)), app, id)
		return float64(max(n, all))
	}
	byType(f.handles, f.handlesTotal, p.Handles, p.HandlesTotal)
	byType(f.requests, f.requestsTotal, p.Requests, p.ActiveRequests)
	gauge(f.loopResources, byType(f.resources, f.resourcesTotal, p.Resources, p.ResourcesTotal), app, id)
}
