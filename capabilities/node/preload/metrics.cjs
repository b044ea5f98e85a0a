// Node.js figures for wattd's metrics endpoint, collected only when the
// runtime's metrics are on (the app info's "metrics"): the duration of the
// requests the app served, event-loop lag and garbage collection, with the
// names, labels and buckets Watt exports them under. Each stats report
// carries them (control.cjs); wattd turns them into Prometheus series.
//
// Requests are the one per-request cost of the preload that a setting can
// turn on. They are timed through Node's diagnostics channels for HTTP
// servers rather than through a 'request' listener and a 'finish' listener
// per response: a subscribed channel costs Node one small message object per
// event, where two listeners would cost copies of the listener arrays on
// every emit. The start time is one property on the socket; the
// aggregation then only bumps numbers in arrays made the first time a method
// and status code are seen, so steady traffic allocates nothing more.
// HTTP/2 requests (the compatibility API has no such channels) are not
// timed.
'use strict'

const { METHODS } = require('node:http')
const dc = require('node:diagnostics_channel')
const { performance, monitorEventLoopDelay, PerformanceObserver, constants } = require('node:perf_hooks')
const { warn } = require('./base.cjs')

// prom-client's default buckets, which Watt's http_request_all_duration_seconds
// uses (seconds).
const REQUEST_BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
// prom-client's buckets of nodejs_gc_duration_seconds (seconds).
const GC_BOUNDS = [0.001, 0.01, 0.1, 1, 2, 5]
// Methods Watt leaves out of its request histograms (@platformatic/http-metrics).
const UNTIMED_METHODS = new Set(['HEAD', 'OPTIONS', 'TRACE', 'CONNECT'])
// Sampling period of the event-loop delay histogram, prom-client's.
const LAG_RESOLUTION_MS = 10

// The request durations' recent distribution, for the quantiles of Watt's
// http_request_all_summary_seconds: counts in buckets of equal width on a
// log scale, Q_SUB to each doubling from 2^Q_MIN_EXP s (0.95 µs) to
// 2^Q_MAX_EXP s (128 s), the first and last buckets taking what is below
// and above. A quantile read from them is within 2.2% of the true value.
// The window is the last 50 to 60 s: the current slot of Q_SLOT_MS, dense
// (one Uint32Array per series), and up to Q_SLOTS - 1 finished slots kept
// as pairs of bucket and count.
const Q_SUB = 16
const Q_MIN_EXP = -20
const Q_MAX_EXP = 7
const Q_BUCKETS = (Q_MAX_EXP - Q_MIN_EXP) * Q_SUB
const Q_SLOT_MS = 10000
const Q_SLOTS = 6

// Histogram keeps per-bucket counts and a sum for each series, in arrays
// made once per series; observe allocates nothing for a known series.
class Histogram {
  constructor (bounds) {
    this.bounds = bounds
    this.series = [] // { labels, counts: Float64Array(bounds + 1), sum }
  }

  // add makes a series for labels (an object, kept as given).
  add (labels) {
    // q and past: the recent distribution (QuantileWindow), when kept.
    const s = { labels, counts: new Float64Array(this.bounds.length + 1), sum: 0, q: null, past: null }
    this.series.push(s)
    return s
  }

  observe (s, v) {
    const b = this.bounds
    let i = 0
    while (i < b.length && v > b[i]) i++
    s.counts[i]++
    s.sum += v
  }

  // snapshot is the report's form: { bounds, series: [{ ...labels,
  // counts, sum }] }, counts per bucket (not cumulative), the last one
  // past every bound. null when nothing was observed yet. With window (a
  // QuantileWindow), each series also has its recent distribution.
  snapshot (window) {
    if (this.series.length === 0) return null
    const out = {
      bounds: this.bounds,
      series: this.series.map((s) => ({ ...s.labels, counts: Array.from(s.counts), sum: s.sum }))
    }
    if (window !== undefined) {
      window.rotate(this.series)
      out.window = { sub: Q_SUB, minExp: Q_MIN_EXP, buckets: Q_BUCKETS }
      for (let i = 0; i < this.series.length; i++) out.series[i].window = window.pairs(this.series[i])
    }
    return out
  }
}

// QuantileWindow keeps each series' recent distribution (see Q_SUB).
class QuantileWindow {
  constructor () {
    this.slotStart = performance.now()
    this.scratch = new Float64Array(Q_BUCKETS)
  }

  // observe counts v seconds in series s: a logarithm and an increment.
  observe (s, v) {
    let q = s.q
    if (q === null) {
      q = s.q = new Uint32Array(Q_BUCKETS)
      s.past = []
    }
    let i = v > 0 ? Math.floor((Math.log2(v) - Q_MIN_EXP) * Q_SUB) : 0
    if (i < 0) i = 0
    else if (i >= Q_BUCKETS) i = Q_BUCKETS - 1
    q[i]++
  }

  // rotate closes the current slot when it is Q_SLOT_MS old: each series
  // keeps it as pairs, and forgets the slots that left the window. Slots
  // that passed with no report (stats reports further apart than a slot)
  // count as empty ones.
  rotate (series) {
    const passed = Math.floor((performance.now() - this.slotStart) / Q_SLOT_MS)
    if (passed < 1) return
    this.slotStart += passed * Q_SLOT_MS
    for (const s of series) {
      if (s.q === null) continue
      const pairs = []
      const q = s.q
      for (let i = 0; i < Q_BUCKETS; i++) {
        if (q[i] !== 0) {
          pairs.push(i, q[i])
          q[i] = 0
        }
      }
      s.past.push(pairs)
      for (let k = 1; k < passed && k < Q_SLOTS; k++) s.past.push([])
      while (s.past.length > Q_SLOTS - 1) s.past.shift()
    }
  }

  // pairs is the series' window as [bucket, count, ...], buckets in order.
  pairs (s) {
    if (s.q === null) return []
    const merged = this.scratch // one for every series and report
    merged.set(s.q)
    for (const slot of s.past) {
      for (let i = 0; i < slot.length; i += 2) merged[slot[i]] += slot[i + 1]
    }
    const out = []
    for (let i = 0; i < Q_BUCKETS; i++) {
      if (merged[i] !== 0) out.push(i, merged[i])
    }
    return out
  }
}

// Bounds on the labels taken from request headers (httpCustomLabels),
// whose values the clients choose: a value is cut to MAX_LABEL_VALUE
// characters, and once a worker has MAX_LABELLED_SERIES series, a request
// of a new combination is counted with every such label set to
// OVERFLOW_VALUE, so that no client can grow a worker's memory and its
// reports without end.
const MAX_LABEL_VALUE = 128
const MAX_LABELLED_SERIES = 500
const OVERFLOW_VALUE = '_overflow'

// BoundedSeries finds a histogram's series by a string key and keeps at
// most max of them: once full(), a caller counts a new combination under
// OVERFLOW_VALUE. The first time it is full, it logs fullWarning.
class BoundedSeries {
  constructor (hist, max, fullWarning) {
    this.hist = hist
    this.max = max
    this.fullWarning = fullWarning
    this.byKey = new Map()
    this.warned = false
  }

  get (key) {
    return this.byKey.get(key)
  }

  full () {
    if (this.byKey.size < this.max) return false
    if (!this.warned) {
      this.warned = true
      warn(this.fullWarning)
    }
    return true
  }

  add (key, labels) {
    const s = this.hist.add(labels)
    this.byKey.set(key, s)
    return s
  }
}

// RequestMetrics aggregates request durations by method and status code,
// and by the values of the labels taken from request headers when
// labels ([{ name, header, default }]) are given.
class RequestMetrics {
  constructor (labels = []) {
    this.labels = labels.length > 0 ? labels : null
    this.hist = new Histogram(REQUEST_BOUNDS)
    this.window = new QuantileWindow()
    // With labels: method, status and values -> series.
    this.labelled = this.labels === null
      ? null
      : new BoundedSeries(this.hist, MAX_LABELLED_SERIES,
        `the request metrics reached ${MAX_LABELLED_SERIES} series; the requests of new header values are counted as "${OVERFLOW_VALUE}"`)
    this.received = 0 // every request, timed or not
    // method index (in http.METHODS) -> Map(status code -> series)
    this.methodIndex = new Map(METHODS.map((m, i) => [m, i]))
    this.byMethod = METHODS.map(() => null)
    // The series of the last request recorded: most requests of a worker
    // share their method and status code with the one before, and then
    // take none of the three lookups below.
    this.last = null
  }

  // record counts one finished request of method with status, that took
  // seconds; req is the request, whose headers the labels read.
  record (method, status, seconds, req) {
    if (this.labels !== null) {
      this.recordLabelled(method, status, seconds, req)
      return
    }
    const last = this.last
    if (last !== null && last.labels.method === method && last.labels.statusCode === status) {
      this.hist.observe(last, seconds)
      this.window.observe(last, seconds)
      return
    }
    if (UNTIMED_METHODS.has(method)) return
    const mi = this.methodIndex.get(method)
    if (mi === undefined) return // Node's parser knows no other methods
    let byStatus = this.byMethod[mi]
    if (byStatus === null) byStatus = this.byMethod[mi] = new Map()
    let s = byStatus.get(status)
    if (s === undefined) {
      s = this.hist.add({ method, statusCode: status })
      byStatus.set(status, s)
    }
    this.last = s
    this.hist.observe(s, seconds)
    this.window.observe(s, seconds)
  }

  // recordLabelled is record with labels: each request builds its key of
  // method, status and the label values, the cost of the feature.
  recordLabelled (method, status, seconds, req) {
    if (UNTIMED_METHODS.has(method) || !this.methodIndex.has(method)) return
    const headers = req.headers
    const values = new Array(this.labels.length)
    let key = method + '\0' + status
    for (let i = 0; i < this.labels.length; i++) {
      const l = this.labels[i]
      // A header's value is a string (set-cookie's an array); anything
      // else is the object's inherited property ("constructor"), not a
      // header the request has.
      let v = headers[l.header]
      if (typeof v !== 'string') v = Array.isArray(v) ? v.join(', ') : l.default
      if (v.length > MAX_LABEL_VALUE) v = v.slice(0, MAX_LABEL_VALUE)
      values[i] = v
      key += '\0' + v
    }
    const series = this.labelled
    let s = series.get(key)
    if (s === undefined && series.full()) {
      values.fill(OVERFLOW_VALUE)
      key = method + '\0' + status + '\0' + values.join('\0')
      s = series.get(key)
    }
    if (s === undefined) s = series.add(key, { method, statusCode: status, labels: values })
    this.hist.observe(s, seconds)
    this.window.observe(s, seconds)
  }
}

const kStart = Symbol('wattd.requestStart')
const kClientStart = Symbol('wattd.clientStart')
const kClientStatus = Symbol('wattd.clientStatus')

// Bound on the series of the outgoing requests' histogram: its origins
// are the app's, but an app that calls ever new hosts must not grow it
// without end. Past it, new combinations count under OVERFLOW_VALUE.
const MAX_CLIENT_SERIES = 500

// ClientMetrics aggregates the durations of the app's outgoing HTTP
// requests made with undici (fetch, and undici itself), by method, status
// code, origin and error, as Watt's http_client_request_duration_seconds
// (httpClientMetrics). A request is timed from its creation to the end of
// its response (undici's trailers) or its error.
class ClientMetrics {
  constructor () {
    this.hist = new Histogram(REQUEST_BOUNDS)
    this.series = new BoundedSeries(this.hist, MAX_CLIENT_SERIES,
      `the outgoing request metrics reached ${MAX_CLIENT_SERIES} series; the requests of new origins are counted as "${OVERFLOW_VALUE}"`)
  }

  // meshDone counts a mesh fetch (mesh-client.cjs's fetchDone): those go
  // over node:http rather than undici, and would otherwise be missing.
  meshDone (job) {
    const err = job.error
    const errorType = err ? String(err.code ?? err.name ?? 'unknown') : ''
    this.record(job.method, job.status, job.url.origin, errorType, (performance.now() - job.t0) / 1000)
  }

  // record counts one request; status is 0 when no response came.
  record (method, status, origin, error, seconds) {
    let key = method + '\0' + status + '\0' + origin + '\0' + error
    let s = this.series.get(key)
    if (s === undefined && this.series.full()) {
      origin = OVERFLOW_VALUE
      key = method + '\0' + status + '\0' + origin + '\0' + error
      s = this.series.get(key)
    }
    if (s === undefined) s = this.series.add(key, { method, statusCode: status, origin, error })
    this.hist.observe(s, seconds)
  }
}

// startClientMetrics subscribes to undici's request channels.
function startClientMetrics (m) {
  const c = new ClientMetrics()
  m.client = c
  dc.subscribe('undici:request:create', ({ request }) => {
    if (request !== null && typeof request === 'object') request[kClientStart] = performance.now()
  })
  dc.subscribe('undici:request:headers', ({ request, response }) => {
    if (request !== null && typeof request === 'object' && response) request[kClientStatus] = response.statusCode
  })
  const done = ({ request, error }) => {
    if (request === null || typeof request !== 'object') return
    const start = request[kClientStart]
    if (start === undefined) return
    request[kClientStart] = undefined
    const origin = typeof request.origin === 'string' && request.origin.length > 0 ? request.origin : 'unknown'
    const errorType = error ? String(error.code ?? error.name ?? 'unknown') : ''
    const method = typeof request.method === 'string' ? request.method : 'unknown'
    c.record(method, request[kClientStatus] || 0, origin, errorType, (performance.now() - start) / 1000)
  }
  dc.subscribe('undici:request:trailers', done)
  dc.subscribe('undici:request:error', done)
}

// startMetrics turns the collection on for this worker and returns what
// the stats report reads (see report).
function startMetrics (state, requestLabels = [], clientMetrics = false) {
  const m = {
    requests: new RequestMetrics(requestLabels),
    client: null, // ClientMetrics, with clientMetrics
    gc: gcMetrics(),
    lag: lagMetrics(),
    reported: false, // see report
    // [channel, subscriber] of the server channels below, so that a
    // standby can tell whether anyone else listens (warm.cjs)
    serverChannels: []
  }
  state.metrics = m
  if (clientMetrics) startClientMetrics(m)
  // Published by every HTTP/1 server of the process: only those wattd
  // manages (the app's public server and its mesh server) are counted.
  //
  // The start time rides on the connection's socket, which keeps it from
  // one request to the next, rather than on each response: a property
  // added to every response gives Node's own response objects a second
  // shape, and its HTTP code on the hot path then handles both. Only a
  // request pipelined behind one still being answered keeps its start on
  // its response.
  //
  // Managed servers are never dropped from state.servers, so the last one
  // found there is remembered: a worker's requests nearly all come through
  // one server (mesh connections are handed to the app's), and a Set
  // lookup per request cost a measurable share of the timing.
  let managed = null
  const onStart = (msg) => {
    const server = msg.server
    if (server !== managed) {
      if (!state.servers.has(server)) return
      managed = server
    }
    m.requests.received++
    const now = performance.now()
    const sock = msg.socket
    if (sock[kStart] > 0) msg.response[kStart] = now
    else sock[kStart] = now
  }
  const onFinish = (msg) => {
    const res = msg.response
    let start = res[kStart]
    if (start === undefined) {
      const sock = msg.socket
      start = sock[kStart]
      if (!(start > 0)) return // a server wattd does not manage
      sock[kStart] = 0
    }
    m.requests.record(msg.request.method, res.statusCode, (performance.now() - start) / 1000, msg.request)
  }
  m.serverChannels.push(['http.server.request.start', onStart], ['http.server.response.finish', onFinish])
  for (const [name, fn] of m.serverChannels) dc.subscribe(name, fn)
  return m
}

// gcMetrics times every garbage collection by kind, as prom-client's
// nodejs_gc_duration_seconds does.
function gcMetrics () {
  const hist = new Histogram(GC_BOUNDS)
  const kinds = new Map()
  for (const [c, name] of [['NODE_PERFORMANCE_GC_MAJOR', 'major'], ['NODE_PERFORMANCE_GC_MINOR', 'minor'],
    ['NODE_PERFORMANCE_GC_INCREMENTAL', 'incremental'], ['NODE_PERFORMANCE_GC_WEAKCB', 'weakcb']]) {
    if (constants[c] !== undefined) kinds.set(constants[c], hist.add({ kind: name }))
  }
  try {
    const obs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const s = kinds.get(e.detail ? e.detail.kind : e.kind)
        if (s !== undefined) hist.observe(s, e.duration / 1000)
      }
    })
    obs.observe({ entryTypes: ['gc'] })
  } catch (err) {
    warn('cannot observe garbage collection', err)
  }
  return hist
}

// lagMetrics samples the event-loop delay every LAG_RESOLUTION_MS. Each
// report gives the figures since the previous one (as prom-client's
// eventloop lag gauges, which reset at every scrape), plus the lag of one
// setImmediate measured at the previous report.
function lagMetrics () {
  const h = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS })
  h.enable()
  const lag = { h, last: 0 }
  return lag
}

// lagSnapshot reads and resets the delay histogram (seconds) and starts
// the next setImmediate measurement.
function lagSnapshot (lag) {
  const h = lag.h
  const s = 1e-9
  const out = { seconds: lag.last, min: 0, max: 0, mean: 0, stddev: 0, p50: 0, p90: 0, p99: 0 }
  if (h.count > 0) {
    out.min = h.min * s
    out.max = h.max * s
    out.mean = h.mean * s
    out.stddev = h.stddev * s
    out.p50 = h.percentile(50) * s
    out.p90 = h.percentile(90) * s
    out.p99 = h.percentile(99) * s
  }
  h.reset()
  const start = performance.now()
  setImmediate(() => { lag.last = (performance.now() - start) / 1000 })
  return out
}

// Bound on the types of handles, requests or resources one report names:
// an app that made handles of thousands of classes gets the first ones,
// and the totals (handlesTotal, activeRequests, resourcesTotal) stay
// exact.
const MAX_TYPES = 64

// processFigures reads what prom-client's default metrics read of the
// process: its Node.js version, external memory (from mem, the report's
// process.memoryUsage()), the V8 heap spaces, and the active handles,
// requests and resources.
function processFigures (mem) {
  const out = {
    version: process.version,
    external: mem.external,
    heapSpaces: [],
    handles: {},
    handlesTotal: 0,
    requests: {},
    activeRequests: 0,
    resources: {},
    resourcesTotal: 0
  }
  for (const s of require('node:v8').getHeapSpaceStatistics()) {
    out.heapSpaces.push({
      space: s.space_name.replace(/_space$/, ''),
      size: s.space_size,
      used: s.space_used_size,
      available: s.space_available_size
    })
  }
  if (typeof process._getActiveHandles === 'function') {
    const handles = process._getActiveHandles()
    for (const h of handles) countType(out.handles, className(h))
    out.handlesTotal = handles.length
  }
  if (typeof process._getActiveRequests === 'function') {
    const requests = process._getActiveRequests()
    for (const r of requests) countType(out.requests, className(r))
    out.activeRequests = requests.length
  }
  if (typeof process.getActiveResourcesInfo === 'function') {
    const resources = process.getActiveResourcesInfo()
    for (const t of resources) countType(out.resources, t)
    out.resourcesTotal = resources.length
  }
  return out
}

function className (o) {
  return o && o.constructor && typeof o.constructor.name === 'string' ? o.constructor.name : 'Unknown'
}

function countType (counts, type) {
  if (counts[type] !== undefined) counts[type]++
  else if (Object.keys(counts).length < MAX_TYPES) counts[type] = 1
}

// report adds the metrics to a stats report; mem is its
// process.memoryUsage().
//
// The process figures start with the second report: node:v8 takes about
// 3 ms to load, and the first report goes out while the worker starts.
function report (m, stats, mem) {
  if (m.reported) stats.process = processFigures(mem)
  m.reported = true
  stats.requestsDone = m.requests.received
  const requests = m.requests.hist.snapshot(m.requests.window)
  if (requests !== null) stats.requests = requests
  if (m.client !== null) {
    const client = m.client.hist.snapshot()
    if (client !== null) stats.clientRequests = client
  }
  const gc = m.gc.snapshot()
  if (gc !== null) stats.gc = gc
  stats.lag = lagSnapshot(m.lag)
}

module.exports = { startMetrics, report, RequestMetrics, ClientMetrics, Histogram, QuantileWindow, Q_SUB, Q_MIN_EXP, Q_BUCKETS, REQUEST_BOUNDS, GC_BOUNDS, MAX_LABELLED_SERIES, MAX_LABEL_VALUE, OVERFLOW_VALUE }
