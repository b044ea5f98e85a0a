// Shared pieces of the preload: constants, the per-process state and the
// helpers every module uses to stay out of the app's way.
'use strict'

const LISTEN_FDS_START = 3 // first passed fd, as in sd_listen_fds(3)
const PROTOCOL_VERSION = 5
const MAX_FRAME = 1 << 20 // ipc.MaxFrame
const EXIT_GRACE_MS = 500 // time to flush output once wattd is gone
// LISTEN_BACKLOG is the backlog of wattd's sockets (listeners.Backlog).
// Node calls listen() again on a socket it is given, with 511 unless told
// otherwise, and the last call sets the queue: without it, the
// connections that wait while a worker is replaced would be cut to 512.
const LISTEN_BACKLOG = 4096

// Drain timing. A keep-alive client that has just had a response may be
// sending its next request on that connection at the very moment the
// server finds the connection idle; closing it then loses that request (the
// client reads a reset or an EOF, and only some clients retry, and only
// idempotent requests). So during a drain an idle connection is closed only
// once no response has finished for DRAIN_QUIET_MS: every idle connection
// has then been idle at least that long, a client that was about to send
// has sent (and got "Connection: close"), and one that has not is taken to
// be done. The quiet period is at most a quarter of wattd's drain timeout,
// and from half of it on idle connections are closed as soon as they are
// idle, so what is left of the timeout serves the requests still running.
const DRAIN_QUIET_MS = 1000
const DRAIN_TIMEOUT_MS = 10000 // when wattd sends none: its default grace

// Per-server bookkeeping, kept off the server objects so the app never sees
// extra properties.
const meshOf = new WeakMap() // primary server -> its mesh server
const nativeClose = new WeakMap() // server -> the close() it had before ours
const closedByDrain = new WeakSet()

function newState () {
  return {
    control: null, // net.Socket of the control channel
    welcomed: false,
    version: 0, // protocol version from welcome
    pending: [], // messages held back until welcome
    reportStats: null, // sends one stats report; set by startStats
    skipBlock: null, // leaves a block of the loop out of the next report; set by startStats
    primary: null, // { server, name, requestedPort }
    servers: new Set(), // every server we manage: primary(s) and mesh
    sockets: new Set(), // open connections of those servers
    tlsSockets: new Set(), // TLS sockets above those of TLS servers
    hookable: [], // servers onRequestHook may be attached to (listen.cjs)
    requestHookWanted: null, // attaches it to them; set by adopt
    // A standby worker's: { fds: every slot's sockets by "http.N"/"mesh.N",
    // held: the app's pending first listen(), promoted, warmup: whether it
    // may warm up, stopWarm: cancels or ends the warm-up (warm.cjs) };
    // null otherwise.
    standby: null,
    readySent: false,
    draining: false,
    drainedSent: false,
    // While wattd's shed runs: the client connections that are still to
    // end, each with the time from which it does, and the timer that ends
    // the shed anyway.
    shedding: null,
    shedTimer: null,
    // During a drain only: see DRAIN_QUIET_MS.
    quietMs: 0,
    quietUntil: 0, // performance.now() after which nothing waits for quiet
    lastDone: 0, // performance.now() when a response last finished
    sweepTimer: null,
    mesh: null, // mesh client, see startMeshClient
    handlers: new Map(), // control message type -> function (msg), see onMessage
    requestHooks: [], // per-request hooks of features that are on, see requests.cjs
    metrics: null, // request metrics, lag and GC when wattd's metrics are on, see metrics.cjs
    tracerProvider: null, // the application spans' provider while tracing is on, see appspans.cjs
    delay: null, // the event-loop delay sampler when health checks judge it, see delay.cjs
    promRegistry: null, // the app's prom-client registry, once it asked for it (globals.cjs)
    appMetrics: undefined, // its text, for the next stats report (control.cjs)
    appMetricsReading: false,
    appMetricsTooLarge: false,
    appMetricsFailed: false
  }
}

function warn (what, err) {
  try {
    const detail = err === undefined ? '' : ': ' + (err && err.message ? err.message : String(err))
    process.stderr.write(`wattd preload: ${what}${detail}\n`)
  } catch {}
}

// guard wraps a callback so an exception in our own code is reported on
// stderr instead of becoming an uncaught exception in the app.
function guard (what, fn) {
  return function guarded (...args) {
    try {
      return fn.apply(this, args)
    } catch (err) {
      warn(what, err)
    }
  }
}

function toInt (s) {
  if (typeof s !== 'string' || !/^\d+$/.test(s)) return undefined
  return Number(s)
}

// parseListenFds maps LISTEN_FDNAMES names to fd numbers.
function parseListenFds (count, names) {
  const n = toInt(count) || 0
  const list = (names || '').split(':')
  const out = {}
  for (let i = 0; i < n; i++) {
    const name = list[i]
    if (name && out[name] === undefined) out[name] = LISTEN_FDS_START + i
  }
  return out
}

module.exports = {
  LISTEN_FDS_START,
  PROTOCOL_VERSION,
  MAX_FRAME,
  EXIT_GRACE_MS,
  LISTEN_BACKLOG,
  DRAIN_QUIET_MS,
  DRAIN_TIMEOUT_MS,
  meshOf,
  nativeClose,
  closedByDrain,
  newState,
  warn,
  guard,
  toInt,
  parseListenFds
}
