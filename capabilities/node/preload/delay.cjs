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

// startDelay starts sampling and returns the histogram (nanoseconds).
function startDelay () {
  const h = createHistogram()
  let last = performance.now()
  const t = setInterval(() => {
    const now = performance.now()
    h.record(Math.max(1, Math.round((now - last) * 1e6)))
    last = now
  }, RESOLUTION_MS)
  t.unref()
  return h
}

// delaySnapshot is the report's figures since the previous one, in
// seconds, and starts the next window; null when nothing was sampled.
function delaySnapshot (h) {
  if (h.count === 0) return null
  const out = { max: h.max / 1e9, p99: h.percentile(99) / 1e9 }
  h.reset()
  return out
}

module.exports = { startDelay, delaySnapshot }
