// globalThis.platformatic: the runtime API Watt gives its applications,
// which the npm package @platformatic/globals reads (getLogger(),
// getApplicationId(), getEvents(), setCustomHealthCheck(), ...). The
// package only answers for the fields named in the set under
// Symbol.for('plt.globals.fields') and throws "globalThis.platformatic.X
// is not available" for the others, so every field set here is added to
// that set, as Watt's updateGlobals does.
//
// What a worker needs to know comes from the app info file wattd writes
// into its runtime directory (WATTD_APP_INFO): the application's
// settings must be there before the app's first line runs, and the
// control channel's first message arrives only after that. Without the
// file the ids still come from WATTD_APP_ID, WATTD_WORKER_ID and
// WATTD_ENTRYPOINT.
//
// Fields wattd cannot honour are left out (getX() then throws, as under a
// Watt that lacks them) or are documented as accepted and unused; see
// docs/runtime-api.md.
'use strict'

const { EventEmitter } = require('node:events')
const { readFileSync } = require('node:fs')
const { pathToFileURL } = require('node:url')
const { warn } = require('./base.cjs')
const { send } = require('./control.cjs')
const { createLogger, levelValue } = require('./logger.cjs')

const kFields = Symbol.for('plt.globals.fields')

// How often queued health signals are sent, as Watt batches them.
const SIGNAL_BATCH_MS = 1000
// Signals kept while waiting for a batch; older ones are dropped first.
const MAX_QUEUED_SIGNALS = 100

// readAppInfo reads the app info file named in env; {} when there is none
// or it cannot be read (reported once on stderr).
function readAppInfo (env) {
  const path = env.WATTD_APP_INFO
  if (!path) return {}
  try {
    const info = JSON.parse(readFileSync(path, 'utf8'))
    return info && typeof info === 'object' ? info : {}
  } catch (err) {
    warn(`cannot read the app info file ${path}; runtime settings are missing from globalThis.platformatic`, err)
    return {}
  }
}

// updateGlobals sets fields on globalThis.platformatic and names them in
// its field set.
function updateGlobals (fields) {
  const p = globalThis.platformatic ??= {}
  p[kFields] ??= new Set()
  for (const [key, value] of Object.entries(fields)) {
    p[key] = value
    p[kFields].add(key)
  }
  return p
}

// installGlobals sets globalThis.platformatic from info (readAppInfo) and
// the environment. It must run before the app loads. On state it leaves
// what the rest of the preload shares: events (the app's EventEmitter, on
// which the app loader emits Watt's 'close'), checks (the app's custom
// checks by kind) and basePath (setBasePath's last word). It answers
// wattd's 'check' messages and sets closing on 'drain' before passing the
// drain on to the handler registered before it; state.messaging, when set
// before, becomes platformatic.messaging.
function installGlobals (state, info) {
  info = info || {}
  const env = process.env
  const appId = typeof info.applicationId === 'string' ? info.applicationId : (env.WATTD_APP_ID || '')
  const workerId = Number.parseInt(env.WATTD_WORKER_ID, 10)
  const root = typeof info.root === 'string' && info.root ? info.root : process.cwd()
  const logLevel = levelValue(info.logLevel) === undefined ? 'info' : info.logLevel

  // Created first: other parts of the preload (the app loader) emit on it.
  const events = new EventEmitter()
  // Watt's emitter also forwards events to the runtime; nothing in wattd
  // listens to a worker's events, so they stay in the worker.
  events.emitAndNotify = events.emit
  state.events = events
  state.checks = { health: null, readiness: null }
  state.basePath = info.basePath

  const logger = createLogger({ level: logLevel, redact: info.redact })

  const fields = {
    applicationId: appId,
    workerId: Number.isNaN(workerId) ? 0 : workerId,
    isEntrypoint: typeof info.entrypoint === 'boolean' ? info.entrypoint : env.WATTD_ENTRYPOINT === '1',
    // Watt's runtimeId is the worker thread's id, unique among the
    // runtime's workers; a wattd worker is a process, and its pid is.
    runtimeId: process.pid,
    root: pathToFileURL(root).toString(),
    logLevel,
    logger,
    events,
    closing: false,
    setBasePath: (path) => { state.basePath = path },
    setCustomHealthCheck: (fn) => setCheck(state, 'health', fn),
    setCustomReadinessCheck: (fn) => setCheck(state, 'readiness', fn),
    sendHealthSignal: healthSignals(state),
    messaging: state.messaging || unavailableMessaging(state),
    // Watt hands these to its gateway and database capabilities, which
    // wattd does not have: accepted so that apps calling them run, and
    // recorded, but nothing reads them.
    setOpenapiSchema: (schema) => { state.openapiSchema = schema },
    setGraphqlSchema: (schema) => { state.graphqlSchema = schema },
    setConnectionString: (s) => { state.connectionString = s },
    notifyConfig: () => {}
  }
  // Always set, as Watt's node capability sets them: undefined (null)
  // when the app (runtime) has no base path.
  fields.basePath = info.basePath
  fields.runtimeBasePath = info.runtimeBasePath ?? null
  // Set only while tracing is on, as Watt sets it only with telemetry.
  // telemetryReady is Watt's promise of its telemetry's start; wattd's is
  // ready before the app loads.
  if (state.tracerProvider !== null && state.tracerProvider !== undefined) {
    fields.tracerProvider = state.tracerProvider
    fields.telemetryReady = Promise.resolve()
  }
  for (const key of ['host', 'port', 'wantsAbsoluteUrls', 'config', 'applicationConfig', 'runtimeConfig']) {
    if (key in info) fields[key] = info[key]
  }
  const p = updateGlobals(fields)
  definePrometheus(state, p, root)

  state.handlers.set('check', (msg) => answerCheck(state, msg.check))
  // Closing is set before the drain starts, so code that looks at it
  // while finishing in-flight requests already sees it.
  const drain = state.handlers.get('drain')
  state.handlers.set('drain', (msg) => {
    markClosing(state)
    if (drain) drain(msg)
  })
  return p
}

// markClosing is Watt's setClosing: closing becomes true and 'closing'
// is emitted once; 'stop' follows, as Watt's worker emits it before it
// stops the application.
function markClosing (state) {
  const p = globalThis.platformatic
  if (!p || p.closing) return
  p.closing = true
  for (const name of ['closing', 'stop']) {
    try {
      state.events.emit(name)
    } catch (err) {
      warn(`a "${name}" event listener threw`, err)
    }
  }
}

// definePrometheus sets prometheus to {client, registry} when prom-client
// (or Watt's fork, @platformatic/prom-client) can be resolved from the
// app's directory. The module is loaded on first
// use only: most apps never touch it, and it costs a few milliseconds.
// The registry is state.promRegistry, whose metrics the stats reports carry
// to wattd's endpoint (control.cjs).
//
// Without prom-client the field is not one of the globals (so
// @platformatic/globals' getPrometheus says it is not available), and
// reading it gives undefined, as the docs say; the first read also says
// why on stderr, since the app's next step is usually a TypeError about
// reading 'client' of undefined. Watt's own packages bring its fork, so
// an app that drops them for wattd loses it without knowing.
function definePrometheus (state, p, root) {
  let path
  // prom-client, or the fork of it that Watt's own packages depend on.
  for (const name of ['prom-client', '@platformatic/prom-client']) {
    try {
      path = require.resolve(name, { paths: [root] })
      break
    } catch {}
  }
  if (!path) {
    let told = false
    Object.defineProperty(p, 'prometheus', {
      enumerable: false,
      configurable: true,
      get () {
        if (!told) {
          told = true
          warn(`globalThis.platformatic.prometheus is undefined: neither prom-client nor @platformatic/prom-client resolves from ${root} (Watt's packages bring the second; under wattd the application needs one among its own dependencies: npm install prom-client)`)
        }
        return undefined
      },
      set (v) {
        Object.defineProperty(p, 'prometheus', { value: v, writable: true, enumerable: true, configurable: true })
        state.promRegistry = v && v.registry
      }
    })
    return
  }
  let value
  let loaded = false
  Object.defineProperty(p, 'prometheus', {
    enumerable: true,
    configurable: true,
    get () {
      if (!loaded) {
        loaded = true
        try {
          const client = require(path)
          value = { client, registry: new client.Registry() }
          state.promRegistry = value.registry
        } catch (err) {
          warn('prom-client was found but could not be loaded', err)
        }
      }
      return value
    },
    set (v) {
      loaded = true
      value = v
      state.promRegistry = v && v.registry
    }
  })
  p[kFields].add('prometheus')
}

// setCheck registers an app's custom health or readiness check and tells
// wattd once that the worker has one, so that it asks for it from then on.
function setCheck (state, kind, fn) {
  if (fn !== null && fn !== undefined && typeof fn !== 'function') {
    throw new TypeError(`setCustom${kind === 'health' ? 'Health' : 'Readiness'}Check expects a function`)
  }
  const first = state.checks[kind] === null
  state.checks[kind] = fn || null
  if (first && fn) send(state, { type: 'checkSet', check: { kind } })
}

// MAX_CHECK_TEXT bounds the body and the error message of a check's
// answer, in UTF-8 bytes: escaped in JSON, the answer stays within a
// control frame (MAX_FRAME, 1 MiB) whatever the text holds.
const MAX_CHECK_TEXT = 128 << 10

// answerCheck runs the app's check of the kind asked for and replies.
// Watt's reading of the result: true, or an object whose status is true,
// passes; an object may also give the HTTP status code and body a probe
// should answer with. No check registered passes; one that throws fails.
function answerCheck (state, req) {
  if (!req || typeof req !== 'object') return
  const reply = (result) => {
    // A body or message too long for a control frame would leave the
    // answer unsent, and the worker taken for one that does not answer:
    // the answer goes with the start of it.
    for (const key of ['body', 'error']) {
      if (typeof result[key] === 'string' && Buffer.byteLength(result[key]) > MAX_CHECK_TEXT) {
        result[key] = Buffer.from(result[key]).subarray(0, MAX_CHECK_TEXT).toString('utf8')
        warn(`the ${req.kind} check's ${key} is over ${MAX_CHECK_TEXT} bytes; only its start is used`)
      }
    }
    send(state, { type: 'checked', check: { id: req.id, kind: req.kind, ...result } })
  }
  const fn = state.checks[req.kind]
  if (typeof fn !== 'function') {
    reply({ ok: true })
    return
  }
  let pending
  try {
    pending = Promise.resolve(fn())
  } catch (err) {
    pending = Promise.reject(err)
  }
  pending.then((res) => {
    if (typeof res === 'boolean') {
      reply({ ok: res })
    } else if (res !== null && typeof res === 'object') {
      const out = { ok: res.status === true }
      if (Number.isInteger(res.statusCode)) out.statusCode = res.statusCode
      if (res.body !== undefined) out.body = typeof res.body === 'string' ? res.body : JSON.stringify(res.body)
      reply(out)
    } else {
      reply({ ok: false, error: `the check returned ${res === null ? 'null' : typeof res}, not a boolean or {status}` })
    }
  }, (err) => {
    reply({ ok: false, error: err && err.message ? err.message : String(err) })
  })
}

// healthSignals returns Watt's sendHealthSignal: it validates a signal,
// stamps it, queues it and sends the queue once a second; the promise it
// returns settles when the batch holding the signal was handed to wattd.
function healthSignals (state) {
  let queue = []
  let promise = null
  return async function sendHealthSignal (signal) {
    if (signal === null || typeof signal !== 'object') throw new TypeError('Health signal must be an object')
    if (typeof signal.type !== 'string') throw new TypeError('Health signal type must be a string')
    if (!signal.timestamp || typeof signal.timestamp !== 'number') signal.timestamp = Date.now()
    queue.push(signal)
    if (queue.length > MAX_QUEUED_SIGNALS) queue.splice(0, queue.length - MAX_QUEUED_SIGNALS)
    if (promise === null) {
      promise = new Promise((resolve) => {
        setTimeout(() => {
          const signals = queue
          queue = []
          promise = null
          send(state, { type: 'healthSignals', signals })
          resolve()
        }, SIGNAL_BATCH_MS).unref()
      })
    }
    return promise
  }
}

// unavailableMessaging stands in for the messaging API where there is
// none: each method fails with the reason rather than with a TypeError.
function unavailableMessaging (state) {
  const reason = state.control
    ? 'globalThis.platformatic.messaging is not available in this build of wattd'
    : 'globalThis.platformatic.messaging needs wattd\'s control channel, which this process does not have'
  return {
    send: () => Promise.reject(new Error(reason)),
    notify: () => { throw new Error(reason) },
    handle: () => { throw new Error(reason) }
  }
}

module.exports = { installGlobals, readAppInfo, updateGlobals, kFields }
