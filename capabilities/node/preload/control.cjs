// The worker side of the control channel (ipc/protocol.go): framing, the
// hello/welcome handshake, dispatch of wattd's messages to the handlers
// other modules register in state.handlers, and the stats reports.
'use strict'

const net = require('node:net')
const { PROTOCOL_VERSION, MAX_FRAME, EXIT_GRACE_MS, warn, guard } = require('./base.cjs')
const { DIAGNOSTICS } = require('./diag.cjs')

function openControl (state, fd) {
  if (fd === undefined) {
    warn('WATTD_CONTROL_FD is not a number; running without wattd control')
    return
  }
  let sock
  try {
    sock = new net.Socket({ fd, readable: true, writable: true })
  } catch (err) {
    warn(`cannot open control fd ${fd}`, err)
    return
  }
  // The channel must never be the reason the process stays up.
  sock.unref()
  state.control = sock
  sock.on('error', (err) => warn('control channel', err)) // 'close' follows
  sock.on('close', () => {
    state.control = null
    // wattd is gone (crash, kill -9, or it gave up on us). Exit so no worker
    // keeps serving unsupervised; the short delay lets pending output out.
    setTimeout(() => process.exit(1), EXIT_GRACE_MS).unref()
  })

  let buf = null
  sock.on('data', guard('control channel read', (chunk) => {
    buf = buf ? Buffer.concat([buf, chunk]) : chunk
    // A read may hold part of a frame or several frames.
    while (buf && buf.length >= 4) {
      const n = buf.readUInt32BE(0)
      if (n > MAX_FRAME) {
        warn(`control frame of ${n} bytes is over the limit; closing the channel`)
        buf = null
        sock.destroy()
        return
      }
      if (buf.length < 4 + n) break
      const body = buf.subarray(4, 4 + n)
      buf = buf.length === 4 + n ? null : buf.subarray(4 + n)
      let msg
      try {
        msg = JSON.parse(body.toString('utf8'))
      } catch (err) {
        warn('bad control frame', err)
        continue
      }
      guard('control message', onMessage)(state, msg)
    }
  }))

  writeFrame(state, { type: 'hello', versions: [PROTOCOL_VERSION], pid: process.pid, runtime: 'node ' + process.version, diagnostics: DIAGNOSTICS })

  // Say so when the process ends (process.exit, an uncaught exception, an
  // empty event loop): wattd then replaces this worker at once, instead of
  // once the kernel has torn the process down, which takes milliseconds
  // and, for a large heap, tens of them. Registered before the app loads,
  // so it runs before the app's own exit listeners. The frame goes out in
  // this call when the channel has nothing queued (Node tries a write at
  // once); otherwise it is lost with the process, and wattd learns of the
  // exit when the process is gone, as it always can.
  process.on('exit', (code) => send(state, { type: 'exiting', exitCode: code }))
}

function onMessage (state, msg) {
  if (!msg || typeof msg !== 'object') return
  switch (msg.type) {
    case 'welcome':
      state.welcomed = true
      state.version = msg.version
      // The mesh table of the moment comes with the welcome.
      if (msg.mesh) {
        const onMesh = state.handlers.get('mesh')
        if (onMesh !== undefined) onMesh(msg)
      }
      if (state.reportStats) state.reportStats()
      for (const m of state.pending.splice(0)) writeFrame(state, m)
      break
    case 'error':
      warn(`wattd refused this worker: ${msg.error}`)
      break
    default: {
      // Other modules register what they handle (drain, mesh, ...).
      // Unknown types are ignored, as the protocol requires.
      const handler = state.handlers.get(msg.type)
      if (handler !== undefined) handler(msg)
    }
  }
}

// send writes msg once the handshake is done; before that it is held back
// (ready, drained) or dropped (stats, which the next tick repeats anyway).
function send (state, msg) {
  if (!state.control) return
  if (state.welcomed) writeFrame(state, msg)
  else if (msg.type !== 'stats') state.pending.push(msg)
}

// sendFrame writes a frame the caller built whole (the 4-byte length and
// the body), for messages too large and too frequent to build as objects
// (spans, see tracing.cjs). Before the handshake it is dropped.
// onWritten, if given, runs once the socket is done with the frame (then
// its memory can be reused); not for a frame that was dropped.
function sendFrame (state, frame, onWritten) {
  const sock = state.control
  if (!sock || !state.welcomed || sock.destroyed || !sock.writable) return
  try {
    sock.write(frame, onWritten)
  } catch (err) {
    warn('cannot send a prepared message', err)
  }
}

// writeFrame never throws: a broken channel just drops the message, and the
// channel's 'close' handler takes care of the rest. A message whose frame
// would be over MAX_FRAME, which wattd answers by killing the worker, is
// not sent: a stats report first loses what can grow with the app (see
// shrinkStats), anything else is dropped with a warning.
function writeFrame (state, msg) {
  const sock = state.control
  if (!sock || sock.destroyed || !sock.writable) return
  try {
    let body = Buffer.from(JSON.stringify(msg), 'utf8')
    if (body.length > MAX_FRAME && msg.type === 'stats') body = shrinkStats(state, msg, body.length)
    if (body.length > MAX_FRAME) {
      warn(`not sending ${msg.type}: its ${body.length} bytes are over the ${MAX_FRAME}-byte limit of a control frame`)
      return
    }
    const frame = Buffer.allocUnsafe(4 + body.length)
    frame.writeUInt32BE(body.length, 0)
    body.copy(frame, 4)
    sock.write(frame)
  } catch (err) {
    warn(`cannot send ${msg.type}`, err)
  }
}

// ---- stats -----------------------------------------------------------------

// shrinkStats re-encodes a stats report of size bytes, over MAX_FRAME,
// without the parts an app can grow: its own metrics' text first, then the
// request durations' recent windows (the quantiles of a summary, one window
// per series: many custom-label series make it large). Each part left out
// is reported once per worker. What remains, the fixed figures and
// bounded histograms, fits.
function shrinkStats (state, msg, size) {
  const stats = msg.stats
  let body
  if (stats.appMetrics !== undefined) {
    delete stats.appMetrics
    body = Buffer.from(JSON.stringify(msg), 'utf8')
    if (!state.appMetricsOverFrame) warn(`a stats report with the app's metrics takes ${size} bytes, over the ${MAX_FRAME}-byte limit of a control frame; reporting without them`)
    state.appMetricsOverFrame = true
    if (body.length <= MAX_FRAME) return body
    size = body.length
  }
  const series = stats.requests?.series
  if (Array.isArray(series) && series.some((s) => s.window !== undefined)) {
    for (const s of series) delete s.window
    delete stats.requests.window
    if (!state.windowsOverFrame) warn(`a stats report with the request durations' windows takes ${size} bytes, over the ${MAX_FRAME}-byte limit of a control frame; reporting without them`)
    state.windowsOverFrame = true
  }
  return Buffer.from(JSON.stringify(msg), 'utf8')
}

// Bound on the text of the app's own metrics in one report (UTF-8 bytes):
// a registry that grows past it is reported once and left out. JSON can
// escape a text under it to more than MAX_FRAME (control characters take
// six bytes each); such a report goes without it (shrinkStats).
const MAX_APP_METRICS = 256 << 10

// The first report goes out before ready (see sendReady and the welcome
// handler): wattd judges a worker's health by its reports once it has had
// one, so a worker stuck right after ready must already have reported.
function startStats (state, intervalMs) {
  const { performance } = require('node:perf_hooks')
  let prev = performance.eventLoopUtilization()
  let first = true
  const report = guard('stats', () => {
    const now = performance.eventLoopUtilization()
    // The first report goes in the event loop's first turn, which has had
    // no idle time yet: its utilisation would be 1 (the app's start), and
    // stay so until the next report, up to a period later. It says 0, as
    // a figure not measured; the next one covers the time since.
    const elu = first ? 0 : performance.eventLoopUtilization(now, prev).utilization
    first = false
    prev = now
    const mem = process.memoryUsage()
    const stats = {
      elu,
      heapUsed: mem.heapUsed,
      heapTotal: mem.heapTotal,
      rss: mem.rss,
      activeConns: state.sockets.size
    }
    if (inspectorOpen()) stats.inspector = true
    if (state.metrics !== null) {
      require('./metrics.cjs').report(state.metrics, stats, mem)
      if (state.appMetrics !== undefined) stats.appMetrics = state.appMetrics
      readAppMetrics(state)
    }
    if (state.delay !== null) {
      const delay = require('./delay.cjs').delaySnapshot(state.delay)
      if (delay !== null) stats.delay = delay
    }
    send(state, { type: 'stats', stats })
  })
  state.reportStats = report
  // What wattd asked for blocked the loop (diag.cjs): the next report's
  // utilisation starts from now, as its delay does.
  state.skipBlock = () => {
    prev = performance.eventLoopUtilization()
    if (state.delay !== null) require('./delay.cjs').skipDelay(state.delay)
  }
  const tick = () => {
    report()
    setTimeout(tick, untilAligned(intervalMs)).unref()
  }
  setTimeout(tick, untilAligned(intervalMs)).unref()
}

// inspectorOpen tells whether the worker's inspector is open (--inspect,
// or SIGUSR1 later): wattd then does not take a pause in its reports for a
// stuck event loop, since a debugger may be holding it at a breakpoint.
// node:inspector takes a few ms to load, so the first report (sent while
// the worker starts) loads it only when a flag asks for the inspector;
// later ones load it once.
let inspector
let reports = 0
const inspectFlag = /(^|\s)--inspect(-brk|-wait)?(=|\s|$)/
function inspectorOpen () {
  reports++
  if (inspector === undefined) {
    const flagged = inspectFlag.test(process.execArgv.join(' ')) || inspectFlag.test(process.env.NODE_OPTIONS || '')
    if (reports === 1 && !flagged) return false
    try {
      inspector = require('node:inspector')
    } catch {
      inspector = null // a Node.js built without it
    }
  }
  return inspector !== null && inspector.url() !== undefined
}

// untilAligned returns the time to the wall clock's next multiple of
// intervalMs. Every worker reports at those instants, so that wattd reads
// the reports of all its workers in one wake-up rather than one wake-up
// each: with hundreds of workers those wake-ups are most of what wattd
// costs while idle. A timer that fires a little early skips to the next
// multiple rather than report twice.
function untilAligned (intervalMs) {
  const d = intervalMs - (Date.now() % intervalMs)
  return d < intervalMs / 4 ? d + intervalMs : d
}

// readAppMetrics renders the app's prom-client registry
// (globalThis.platformatic.prometheus, see globals.cjs) for the next
// report: prom-client's metrics() is asynchronous, so each report carries
// the text read at the one before.
// A registry that rendered over MAX_APP_METRICS is not rendered again for
// APP_METRICS_RETRY_MS, doubling while it stays over, up to
// APP_METRICS_RETRY_MAX_MS: rendering it (on the event loop) at every
// report would cost the app for nothing.
const APP_METRICS_RETRY_MS = 60000
const APP_METRICS_RETRY_MAX_MS = 16 * 60000

function readAppMetrics (state) {
  const registry = state.promRegistry
  if (!registry || typeof registry.metrics !== 'function' || state.appMetricsReading) return
  if (state.appMetricsSkipUntil && Date.now() < state.appMetricsSkipUntil) return
  state.appMetricsReading = true
  Promise.resolve().then(() => registry.metrics()).then((text) => {
    if (typeof text !== 'string') throw new TypeError('metrics() did not give a string')
    const size = Buffer.byteLength(text)
    if (size > MAX_APP_METRICS) {
      const retry = state.appMetricsRetry || APP_METRICS_RETRY_MS
      if (!state.appMetricsTooLarge) warn(`the app's metrics registry renders ${size} bytes, over the ${MAX_APP_METRICS} wattd takes; not reporting it (rendered again in ${retry / 1000} s)`)
      state.appMetricsTooLarge = true
      state.appMetrics = undefined
      state.appMetricsSkipUntil = Date.now() + retry
      state.appMetricsRetry = Math.min(2 * retry, APP_METRICS_RETRY_MAX_MS)
      return
    }
    state.appMetricsRetry = undefined
    state.appMetrics = text
  }).catch((err) => {
    if (!state.appMetricsFailed) warn("cannot read the app's metrics registry", err)
    state.appMetricsFailed = true
    state.appMetrics = undefined
  }).finally(() => { state.appMetricsReading = false })
}

module.exports = { openControl, send, sendFrame, startStats }
