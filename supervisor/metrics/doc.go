// Package metrics serves the runtime's Prometheus endpoint and the
// readiness and liveness probes Watt puts beside it (watt.json's
// "metrics" key).
//
// Every figure is read when Prometheus scrapes: the collector asks the
// runtime for its status snapshot and reads /proc for each worker's
// process, so nothing polls in the background and a runtime nobody
// scrapes pays nothing. Series carry Watt's labels, applicationId and
// workerId, so dashboards built for Watt work unchanged; a registry of its
// own keeps wattd's process metrics out of the workers' series.
package metrics
