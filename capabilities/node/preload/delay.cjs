// The event-loop delay the health checks judge (health.maxEventLoopDelay,
// maxEventLoopDelayP99), sampled only when the app's health block sets one
// of them (the app info's "eventLoopDelay"). As Watt's workers measure it:
// a sample every 20 ms, each the time since the previous one, so an idle
// worker shows about 20 ms and a loop held for 150 ms shows about 170.
//
// A timer of its own rather than Node's monitorEventLoopDelay, whose reset
// also forgets when it last sampled: the first sample after each report
// would be dropped, and with it a block of the loop that began just after
// a report. Here the histogram is reset at every report and the clock is
// not.
'use strict'

const { performance, createHistogram } = require('node:perf_hooks')

const RESOLUTION_MS = 20

// startDelay starts sampling and returns the sampler: its histogram
// (nanoseconds) and the time of the last sample.
function startDelay () {
  const d = { h: createHistogram(), last: performance.now() }
  const t = setInterval(() => {
    const now = performance.now()
    d.h.record(Math.max(1, Math.round((now - d.last) * 1e6)))
    d.last = now
  }, RESOLUTION_MS)
  t.unref()
  return d
}

// delaySnapshot is the report's figures since the previous one, in
// seconds, and starts the next window; null when nothing was sampled.
function delaySnapshot (d) {
  const h = d.h
  if (h.count === 0) return null
  const out = { max: h.max / 1e9, p99: h.percentile(99) / 1e9 }
  h.reset()
  return out
}

// skipDelay leaves out of the samples the time since the last one: a
// block of the loop that wattd asked for (a heap snapshot) is not the
// app's delay.
function skipDelay (d) {
  d.last = performance.now()
}

module.exports = { startDelay, delaySnapshot, skipDelay }
