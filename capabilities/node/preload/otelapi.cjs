// @opentelemetry/api's global context manager and W3C propagator, as Watt
// registers them, so that an application using the API sees the request:
//
//   const { trace, context, propagation } = require('@opentelemetry/api')
//   trace.getActiveSpan().setAttribute('user.id', id)  // on the server span
//   propagation.inject(context.active(), headers)      // its traceparent
//
// Set up by tracing.cjs while tracing is on, and only when the API can be
// resolved from the application's directory. The API is not loaded (that
// alone takes about 30 ms of a worker's start on Node.js 20): every copy
// of API 1.x looks up what is registered in one object on globalThis,
// under Symbol.for('opentelemetry.js.api.1'), with the version of the
// copy that registered it, which a copy accepts when it has the same major
// and an older or equal minor. The preload puts its context manager and
// propagator there under the version of the application's copy, as that
// copy's setGlobalContextManager would. The tracer provider is not
// registered (neither is Watt's): an SDK of the application's own may
// take that place.
//
// The context manager keeps the API's Context in the preload's request
// storage (tracing.cjs): active() is the Context of the current request
// context, holding its span (the server span as a RequestSpan, or the
// application span made active), and with(ctx, fn) runs fn in a request
// context made from ctx's span, so that mesh calls are that span's
// children and log lines carry its ids, whatever made the span.
'use strict'

const fs = require('node:fs')
const path = require('node:path')
const { warn } = require('./base.cjs')
const {
  parseTraceparent, formatTraceparent, validIds, takeIds, idSlab, TRACE_ID, SPAN_ID, PARENT_ID, SPAN_KEY, SUPPRESS_KEY
} = require('./tracecontext.cjs')
const { AppSpan, RequestSpan } = require('./appspans.cjs')

// Where API 1.x keeps what is registered.
const API_KEY = Symbol.for('opentelemetry.js.api.1')

// registerOtelApi registers the context manager and the propagator for
// the API found from root, if any. hooks: requestIdOf(ctx), traceIdOf(ctx),
// spanIdOf(ctx), appSpanContext(span), newContext().
function registerOtelApi (t, root, hooks) {
  const version = apiVersion(root)
  if (version === '') return false // no API: nothing would read it
  if (!/^1\.\d+\.\d+/.test(version)) {
    warn(`tracing: @opentelemetry/api ${version} is not of version 1; left as it is`)
    return false
  }
  let api = globalThis[API_KEY]
  if (api !== undefined && api !== null && typeof api === 'object') {
    if (api.context !== undefined) {
      warn('tracing: @opentelemetry/api already has a context manager; trace.getActiveSpan() will not see the request')
      return false
    }
  } else {
    api = { version }
    Object.defineProperty(globalThis, API_KEY, { value: api, writable: true, configurable: true, enumerable: false })
  }
  api.context = new ContextManager(t, hooks)
  if (api.propagation === undefined) api.propagation = new TraceContextPropagator()
  t.otelApi = true
  return true
}

// apiVersion is the version of the @opentelemetry/api the application
// would load, '' when it has none. Its package.json is not among the
// package's exports, so it is read next to the resolved entry point.
function apiVersion (root) {
  let main
  try {
    main = require.resolve('@opentelemetry/api', { paths: [root] })
  } catch {
    return ''
  }
  const marker = path.sep + path.join('@opentelemetry', 'api') + path.sep
  const i = main.lastIndexOf(marker)
  if (i === -1) return ''
  try {
    const pkg = JSON.parse(fs.readFileSync(main.slice(0, i + marker.length) + 'package.json', 'utf8'))
    return typeof pkg.version === 'string' ? pkg.version : ''
  } catch (err) {
    warn('tracing: reading the version of @opentelemetry/api', err)
    return ''
  }
}

// Context is the API's Context: an immutable map of values by key.
class Context {
  constructor (values) {
    this._values = values === undefined ? new Map() : new Map(values)
  }

  getValue (key) { return this._values.get(key) }

  setValue (key, value) {
    const c = new Context(this._values)
    c._values.set(key, value)
    return c
  }

  deleteValue (key) {
    const c = new Context(this._values)
    c._values.delete(key)
    return c
  }
}

const ROOT = new Context()

class ContextManager {
  constructor (t, hooks) {
    this._t = t
    this._hooks = hooks
  }

  // active is the API's Context of the current request context, made once
  // per request context.
  active () {
    const store = this._t.storage.getStore()
    if (store === undefined) return ROOT
    let c = store.api
    if (c === null) {
      const span = spanOf(this._t, this._hooks, store)
      c = span === null ? ROOT : ROOT.setValue(SPAN_KEY, span)
      store.api = c
    }
    return c
  }

  with (context, fn, thisArg, ...args) {
    const store = this._storeOf(context)
    const run = thisArg === undefined ? fn : (...a) => fn.apply(thisArg, a)
    return this._t.storage.run(store, run, ...args)
  }

  // bind makes a function run in context; other targets (an EventEmitter)
  // are returned as they are.
  bind (context, target) {
    if (typeof target !== 'function') return target
    const manager = this
    const bound = function (...args) {
      return manager.with(context, () => target.apply(this, args))
    }
    Object.defineProperty(bound, 'length', { value: target.length })
    return bound
  }

  enable () { return this }
  disable () { return this }

  // _storeOf is the request context in which code run with context runs.
  _storeOf (context) {
    const t = this._t
    const cur = t.storage.getStore()
    if (context === undefined || context === null || typeof context.getValue !== 'function') return cur
    if (cur !== undefined && cur.api === context) return cur
    let span
    try {
      span = context.getValue(SPAN_KEY)
    } catch {}
    const hooks = this._hooks
    let store
    if (span instanceof AppSpan && span.ids !== null) {
      // An application span (a RequestSpan has its request's ids too).
      store = span instanceof RequestSpan ? copyOf(t, hooks, span.store) : hooks.appSpanContext(span)
    } else {
      store = hooks.newContext()
      if (cur !== undefined) {
        store.reqId = hooks.requestIdOf(cur)
        store.tracestate = cur.tracestate
      }
      const sc = span !== null && span !== undefined && typeof span.spanContext === 'function' ? span.spanContext() : null
      if (sc && validIds(sc.traceId, sc.spanId)) {
        // A span of something else (an SDK of the app's own, or a remote
        // parent from propagation.extract): mesh calls become its children.
        const o = takeIds()
        const ids = idSlab()
        ids.write(sc.traceId, o + TRACE_ID, 16, 'hex')
        ids.write(sc.spanId, o + SPAN_ID, 8, 'hex')
        store.traced = true
        store.ids = ids
        store.off = o
        store.sampled = (sc.traceFlags & 1) === 1
        store.traceHex = sc.traceId
        store.spanHex = sc.spanId
        // Its spans' parent is another process's (propagation.extract).
        store.remote = sc.isRemote === true
        if (sc.traceState && typeof sc.traceState.serialize === 'function') store.tracestate = sc.traceState.serialize()
      }
    }
    store.api = context
    if (span !== undefined && span !== null) store.span = span
    return store
  }
}

// spanOf is the span a request context is of, as the API shows it: the
// application span made active, or the request's server span (made the
// first time it is asked for); null when the context is not traced.
function spanOf (t, hooks, store) {
  if (store.span !== null) return store.span
  if (!store.traced) return null
  const parentId = store.hasParent ? store.ids.toString('hex', store.off + PARENT_ID, store.off + PARENT_ID + 8) : ''
  const ts = store.tracestate !== '' ? new TraceState(store.tracestate) : undefined
  store.span = t.app.requestSpan(store, hooks.traceIdOf(store), hooks.spanIdOf(store), parentId, ts)
  return store.span
}

// copyOf is a request context like store, to run code with another API
// Context of the same span: the request id is made first, so both have
// the same.
function copyOf (t, hooks, store) {
  hooks.requestIdOf(store)
  hooks.traceIdOf(store)
  hooks.spanIdOf(store)
  const c = hooks.newContext()
  Object.assign(c, store)
  c.logFields = null
  c.api = null
  return c
}

// TraceContextPropagator reads and writes traceparent and tracestate, as
// OpenTelemetry's W3CTraceContextPropagator.
class TraceContextPropagator {
  inject (context, carrier, setter) {
    if (context === null || typeof context !== 'object' || typeof context.getValue !== 'function') return
    if (context.getValue(SUPPRESS_KEY) === true) return
    const span = context.getValue(SPAN_KEY)
    const sc = span !== null && span !== undefined && typeof span.spanContext === 'function' ? span.spanContext() : null
    if (!sc || !validIds(sc.traceId, sc.spanId)) return
    setter.set(carrier, 'traceparent', formatTraceparent(sc.traceId, sc.spanId, (sc.traceFlags & 1) === 1))
    if (sc.traceState && typeof sc.traceState.serialize === 'function') {
      const ts = sc.traceState.serialize()
      if (ts) setter.set(carrier, 'tracestate', ts)
    }
  }

  extract (context, carrier, getter) {
    if (context === null || typeof context !== 'object' || typeof context.setValue !== 'function') return context
    let h = getter.get(carrier, 'traceparent')
    if (Array.isArray(h)) h = h.length === 1 ? h[0] : undefined
    const p = parseTraceparent(h)
    if (p === null) return context
    const sc = { traceId: p.traceId, spanId: p.parentId, traceFlags: p.sampled ? 1 : 0, isRemote: true }
    let ts = getter.get(carrier, 'tracestate')
    if (Array.isArray(ts)) ts = ts.join(',')
    if (typeof ts === 'string' && ts !== '') sc.traceState = new TraceState(ts)
    return context.setValue(SPAN_KEY, new RemoteSpan(sc))
  }

  fields () { return ['traceparent', 'tracestate'] }
}

// RemoteSpan is the span of an extracted span context, as the API's
// NonRecordingSpan: it has the ids and records nothing.
class RemoteSpan {
  constructor (sc) { this._sc = sc }
  spanContext () { return this._sc }
  setAttribute () { return this }
  setAttributes () { return this }
  addEvent () { return this }
  addLink () { return this }
  addLinks () { return this }
  setStatus () { return this }
  updateName () { return this }
  end () {}
  isRecording () { return false }
  recordException () {}
}

// TraceState is the API's TraceState: the list-members of a tracestate
// header, at most 32, kept in order; set puts a member first.
const MAX_MEMBERS = 32
class TraceState {
  constructor (raw) {
    this._members = []
    if (typeof raw !== 'string') return
    for (const part of raw.split(',')) {
      const m = part.trim()
      const eq = m.indexOf('=')
      if (eq > 0 && eq < m.length - 1 && this._members.length < MAX_MEMBERS) this._members.push([m.slice(0, eq), m.slice(eq + 1)])
    }
  }

  get (key) {
    const m = this._members.find((e) => e[0] === key)
    return m === undefined ? undefined : m[1]
  }

  set (key, value) {
    const t = new TraceState()
    t._members = [[key, value], ...this._members.filter((e) => e[0] !== key)].slice(0, MAX_MEMBERS)
    return t
  }

  unset (key) {
    const t = new TraceState()
    t._members = this._members.filter((e) => e[0] !== key)
    return t
  }

  serialize () { return this._members.map((e) => e[0] + '=' + e[1]).join(',') }
}

module.exports = { registerOtelApi }
