// @opentelemetry/api's global context manager and W3C propagator, as Watt
// registers them, so that an application using the API sees the request:
//
//   const { trace, context, propagation } = require('@opentelemetry/api')
//   trace.getActiveSpan().setAttribute('user.id', id)  // on the server span
//   propagation.inject(context.active(), headers)      // its traceparent
//
// Loaded by tracing.cjs while tracing is on, and only when the API can be
// resolved from the application's directory: the registration goes through
// the application's own copy, so the global carries its version and every
// copy that version serves (the same major, an older or equal minor) finds
// it. The tracer provider is not registered (neither is Watt's): an SDK of
// the application's own may take that place; its spans then have our
// context, so they nest with the request's.
//
// The context manager keeps the API's Context in the preload's request
// storage (tracing.cjs): active() is the Context of the current request
// context, holding its span (the server span as a RequestSpan, or the
// application span made active), and with(ctx, fn) runs fn in a request
// context made from ctx's span, so that mesh calls are that span's
// children and log lines carry its ids, whatever made the span.
'use strict'

const { warn } = require('./base.cjs')
const { parseTraceparent, formatTraceparent, validIds, takeIds, idSlab, TRACE_ID, SPAN_ID, PARENT_ID } = require('./tracecontext.cjs')
const { AppSpan } = require('./appspans.cjs')

// The API's context keys (createContextKey makes them with Symbol.for).
const SPAN_KEY = Symbol.for('OpenTelemetry Context Key SPAN')
const SUPPRESS_KEY = Symbol.for('OpenTelemetry SDK Context Key SUPPRESS_TRACING')

// registerOtelApi registers the context manager and the propagator through
// the API found from root, if any. hooks: requestIdOf(ctx), traceIdOf(ctx),
// spanIdOf(ctx), appSpanContext(span), newContext().
function registerOtelApi (t, root, hooks) {
  let path
  try {
    path = require.resolve('@opentelemetry/api', { paths: [root] })
  } catch {
    return false // no API: nothing could read what would be registered
  }
  let api
  try {
    api = require(path)
  } catch (err) {
    warn('tracing: @opentelemetry/api was found but could not be loaded', err)
    return false
  }
  if (!api || !api.context || typeof api.context.setGlobalContextManager !== 'function' ||
      !api.propagation || typeof api.propagation.setGlobalPropagator !== 'function' ||
      !api.ROOT_CONTEXT || typeof api.ROOT_CONTEXT.setValue !== 'function') {
    warn('tracing: @opentelemetry/api has not the shape of version 1; left as it is')
    return false
  }
  const manager = new ContextManager(t, hooks, api.ROOT_CONTEXT)
  if (!api.context.setGlobalContextManager(manager)) {
    warn('tracing: @opentelemetry/api already has a context manager; trace.getActiveSpan() will not see the request')
    return false
  }
  t.otelApi = true
  api.propagation.setGlobalPropagator(new TraceContextPropagator(api))
  return true
}

class ContextManager {
  constructor (t, hooks, root) {
    this._t = t
    this._hooks = hooks
    this._root = root
  }

  // active is the API's Context of the current request context, made once
  // per request context.
  active () {
    const store = this._t.storage.getStore()
    if (store === undefined) return this._root
    let c = store.api
    if (c === null) {
      const span = spanOf(this._t, this._hooks, store)
      c = span === null ? this._root : this._root.setValue(SPAN_KEY, span)
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
      store = span.touched === undefined ? hooks.appSpanContext(span) : copyOf(t, hooks, span.store)
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
  store.span = t.app.requestSpan(store, hooks.traceIdOf(store), hooks.spanIdOf(store), parentId, undefined)
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
  constructor (api) {
    this._api = api
  }

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
    let h = getter.get(carrier, 'traceparent')
    if (Array.isArray(h)) h = h.length === 1 ? h[0] : undefined
    const p = parseTraceparent(h)
    if (p === null) return context
    const sc = { traceId: p.traceId, spanId: p.parentId, traceFlags: p.sampled ? 1 : 0, isRemote: true }
    let ts = getter.get(carrier, 'tracestate')
    if (Array.isArray(ts)) ts = ts.join(',')
    if (typeof ts === 'string' && ts !== '' && typeof this._api.createTraceState === 'function') {
      try {
        sc.traceState = this._api.createTraceState(ts)
      } catch {}
    }
    return this._api.trace.setSpanContext(context, sc)
  }

  fields () { return ['traceparent', 'tracestate'] }
}

module.exports = { registerOtelApi }
