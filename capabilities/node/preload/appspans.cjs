// The application's own spans: the tracer provider Watt gives applications
// as globalThis.platformatic.tracerProvider, set while tracing is on. It
// has the OpenTelemetry API's shapes (TracerProvider, Tracer, Span), so
// code written for Watt's runs unchanged:
//
//   const tracer = globalThis.platformatic.tracerProvider.getTracer('orders')
//   await tracer.startActiveSpan('load order', async (span) => {
//     span.setAttribute('order.id', id)
//     ...                      // mesh calls made here are its children
//     span.end()
//   })
//
// A span's parent is, in this order: the span of the context passed to
// startSpan or startActiveSpan (a context of the app's own
// @opentelemetry/api), the span made active by startActiveSpan around the
// current code, the request's server span; without any, the span starts a
// trace, which the sampler decides as it decides a request's. Like Watt's
// provider, this one is not registered as @opentelemetry/api's global
// provider (an application's own SDK may want that place), so
// trace.getTracer() of the API stays a no-op unless the app sets one up.
//
// Finished spans are sent to wattd as a JSON spans message (the form
// ipc/spans.go describes), in batches, within wattd's limits: what does not
// fit (too many attributes, too long a value) is cut rather than have wattd
// drop the whole span. Events (addEvent, recordException) and links
// (addLink, addLinks, the links option) are carried too.
'use strict'

const { warn } = require('./base.cjs')
const { send } = require('./control.cjs')
const { takeIds, idSlab, hexOf, nowMs, validIds, TRACE_ID, SPAN_ID, PARENT_ID, SPAN_KEY } = require('./tracecontext.cjs')

// The API's SpanKind values (INTERNAL 0 ... CONSUMER 4) as wattd names them.
const KINDS = ['internal', 'server', 'client', 'producer', 'consumer']
// The API's SpanStatusCode: UNSET 0, OK 1, ERROR 2.
const STATUS = ['unset', 'ok', 'error']
// wattd's limits (ipc/spans.go): a span beyond them would be dropped whole.
const MAX_NAME = 256
const MAX_ATTRIBUTES = 64
const MAX_KEY = 256
const MAX_VALUE = 4096
const MAX_ITEMS = 64
const MAX_EVENTS = 64
const MAX_LINKS = 32
const MAX_PER_MESSAGE = 512
// Bytes of JSON: a control frame takes at most 1 MiB, so a message is kept
// to MAX_MESSAGE_BYTES, and a span to MAX_SPAN_BYTES by leaving out the
// attributes, events and links past the first ATTRIBUTE_BYTES, EVENT_BYTES
// and LINK_BYTES of each (64 attributes of 4096 characters could otherwise
// reach megabytes once escaped).
const MAX_MESSAGE_BYTES = 512 << 10
const MAX_SPAN_BYTES = 128 << 10
const ATTRIBUTE_BYTES = 64 << 10
const EVENT_BYTES = 48 << 10
const LINK_BYTES = 8 << 10
// Spans waiting to be sent; more are dropped (and counted with the rest),
// as they are while wattd has not read MAX_BACKLOG bytes of the control
// channel.
const MAX_QUEUED = 4096
const MAX_BACKLOG = 4 << 20
const SEND_EVERY_MS = 200
const MAX_TRACERS = 256
// Span times past this (year 5138) are wattd's limit too; such a time is
// taken as a mistake and replaced by now.
const MAX_EPOCH_MS = 1e14

// appTracing makes the provider for the tracer t of tracing.cjs. hooks
// gives what lives there: sampled(t, ids, o, parentSampled) decides a
// span, context(span) makes the request context that code run by
// startActiveSpan sees, traceIdOf(ctx) and spanIdOf(ctx) give a request
// context's ids in hex, dropped(t, n) counts lost spans.
function appTracing (t, hooks) {
  const out = { queue: [], timer: null, dropped: (n) => hooks.dropped(t, n) }
  const tracers = new Map()
  out.flush = () => flushSpans(t, out)
  // The request's server span as @opentelemetry/api shows it (otelapi.cjs).
  out.requestSpan = (store, traceId, spanId, parentId, traceState) =>
    new RequestSpan(t, out, store, traceId, spanId, parentId, traceState)
  out.provider = {
    getTracer (name, version) {
      const key = String(name) + '@' + (version === undefined ? '' : String(version))
      let tr = tracers.get(key)
      if (tr === undefined) {
        tr = new AppTracer(t, out, hooks, scopeOf(name, version))
        // Tracers keep nothing of their own: past MAX_TRACERS names, new
        // ones are made and not kept.
        if (tracers.size < MAX_TRACERS) tracers.set(key, tr)
      }
      return tr
    },
    forceFlush () {
      out.flush()
      return Promise.resolve()
    },
    shutdown () {
      out.flush()
      return Promise.resolve()
    }
  }
  return out
}

class AppTracer {
  constructor (t, out, hooks, scope) {
    this._t = t
    this._out = out
    this._hooks = hooks
    this._scope = scope // the instrumentation scope of its spans, or null
  }

  startSpan (name, options, context) {
    const o = options !== null && typeof options === 'object' ? options : {}
    const span = new AppSpan(this._t, this._out, this._hooks, name, o, parentOf(this._t, this._hooks, o, context))
    span._scope = this._scope
    return span
  }

  // startActiveSpan(name[, options[, context]], fn) runs fn(span) with the
  // span as the current one, and returns what fn returns.
  startActiveSpan (name, a, b, c) {
    let options
    let context
    let fn
    if (typeof a === 'function') fn = a
    else if (typeof b === 'function') { options = a; fn = b } else { options = a; context = b; fn = c }
    if (typeof fn !== 'function') throw new TypeError('startActiveSpan needs a function')
    const span = this.startSpan(name, options, context)
    return this._t.storage.run(this._hooks.context(span), fn, span)
  }
}

// parentOf finds the parent of a new span: { traceId, spanId, sampled,
// store }, the ids '' for a root. store is the request context the span
// is made in (for its request id and tracestate), or undefined.
function parentOf (t, hooks, o, context) {
  const store = t.storage.getStore()
  if (o.root === true) return { traceId: '', spanId: '', sampled: false, store }
  if (context !== null && typeof context === 'object' && typeof context.getValue === 'function') {
    let s
    try {
      s = context.getValue(SPAN_KEY)
    } catch {}
    if (s !== null && typeof s === 'object' && typeof s.spanContext === 'function') {
      const sc = s.spanContext()
      if (sc && validIds(sc.traceId, sc.spanId)) {
        return { traceId: sc.traceId, spanId: sc.spanId, sampled: (sc.traceFlags & 1) === 1, store }
      }
    }
    // A context without a span: with the preload's context manager
    // registered (otelapi.cjs) the application asked for a root span, as
    // the SDK reads it. Without, the app has no context manager (its
    // context.active() is then always the root context), so the current
    // request or active span is meant.
    if (t.otelApi) return { traceId: '', spanId: '', sampled: false, store }
  }
  if (store !== undefined && store.traced) {
    return { traceId: hooks.traceIdOf(store), spanId: hooks.spanIdOf(store), sampled: store.sampled, store }
  }
  return { traceId: '', spanId: '', sampled: false, store }
}

class AppSpan {
  constructor (t, out, hooks, name, o, parent) {
    this._t = t
    this._out = out
    this.ids = null
    this.off = 0
    this.hasParent = parent.traceId !== ''
    this.store = parent.store
    this.sampled = false
    this._traceId = ''
    this._spanId = ''
    this._parentId = this.hasParent ? parent.spanId : ''
    this._parentRemote = this.hasParent && parent.store !== undefined && parent.store !== null && parent.store.remote === true
    if (hooks !== null) { // else a RequestSpan, which has its ids
      const off = takeIds()
      const ids = idSlab()
      this.ids = ids
      this.off = off
      if (this.hasParent) {
        ids.write(parent.traceId, off + TRACE_ID, 16, 'hex')
        ids.write(parent.spanId, off + PARENT_ID, 8, 'hex')
      }
      this.sampled = hooks.sampled(t, ids, off, this.hasParent ? parent.sampled : null)
      this._traceId = hexOf(ids, off + TRACE_ID, 16)
      this._spanId = hexOf(ids, off + SPAN_ID, 8)
    }
    this._traceState = undefined
    this._name = spanName(name)
    this._kind = KINDS[o.kind] || 'internal'
    this._start = timeMs(o.startTime)
    this._attrs = null
    this._nattrs = 0
    this._status = 'unset'
    this._statusMessage = ''
    this._events = null
    this._links = null
    this._scope = null
    this._ended = false
    if (o.attributes !== null && typeof o.attributes === 'object') this.setAttributes(o.attributes)
    if (Array.isArray(o.links)) this.addLinks(o.links)
  }

  spanContext () {
    const sc = { traceId: this._traceId, spanId: this._spanId, traceFlags: this.sampled ? 1 : 0, isRemote: false }
    if (this._traceState !== undefined) sc.traceState = this._traceState
    return sc
  }

  isRecording () { return this.sampled && !this._ended }

  setAttribute (key, value) {
    if (!this.isRecording() || typeof key !== 'string' || key === '') return this
    const v = attributeValue(value)
    if (v === undefined) return this
    if (this._attrs === null) this._attrs = Object.create(null)
    const k = clip(key, MAX_KEY)
    if (!(k in this._attrs)) {
      if (this._nattrs === MAX_ATTRIBUTES) return this
      this._nattrs++
    }
    this._attrs[k] = v
    return this
  }

  setAttributes (attrs) {
    if (attrs !== null && typeof attrs === 'object') {
      for (const k of Object.keys(attrs)) this.setAttribute(k, attrs[k])
    }
    return this
  }

  setStatus (status) {
    if (!this.isRecording() || status === null || typeof status !== 'object') return this
    const s = STATUS[status.code]
    if (s === undefined) return this
    // As the SDK: OK is final, and an unset status changes nothing.
    if (this._status === 'ok' || s === 'unset') return this
    this._status = s
    this._statusMessage = s === 'error' && typeof status.message === 'string' ? clip(status.message, MAX_VALUE) : ''
    return this
  }

  updateName (name) {
    if (this.isRecording()) this._name = spanName(name)
    return this
  }

  // addEvent(name[, attributes][, time]), or addEvent(name, time).
  addEvent (name, attributesOrTime, time) {
    if (!this.isRecording()) return this
    if (this._events === null) this._events = []
    if (this._events.length === MAX_EVENTS) return this
    let attrs = attributesOrTime
    if (isTimeInput(attributesOrTime)) {
      attrs = undefined
      time = attributesOrTime
    }
    const ev = { name: spanName(name), timeMs: timeMs(time) }
    const a = attributesOf(attrs)
    if (a !== null) ev.attributes = a
    this._events.push(ev)
    return this
  }

  // recordException adds the "exception" event of OpenTelemetry's
  // conventions: the error's type (its code, else its name), message and
  // stack.
  recordException (exception, time) {
    const attrs = {}
    if (typeof exception === 'string') {
      attrs['exception.message'] = exception
    } else if (exception !== null && typeof exception === 'object') {
      if (exception.code !== undefined && exception.code !== null) attrs['exception.type'] = String(exception.code)
      else if (typeof exception.name === 'string') attrs['exception.type'] = exception.name
      if (typeof exception.message === 'string') attrs['exception.message'] = exception.message
      if (typeof exception.stack === 'string') attrs['exception.stacktrace'] = exception.stack
    }
    if ('exception.type' in attrs || 'exception.message' in attrs) this.addEvent('exception', attrs, time)
  }

  // addLink({context, attributes}): context is a span context (of any
  // span, this trace's or another's).
  addLink (link) {
    if (!this.isRecording() || link === null || typeof link !== 'object') return this
    const c = link.context
    if (c === null || typeof c !== 'object' || !validIds(c.traceId, c.spanId)) return this
    if (this._links === null) this._links = []
    if (this._links.length === MAX_LINKS) return this
    const l = { traceId: c.traceId, spanId: c.spanId }
    const a = attributesOf(link.attributes)
    if (a !== null) l.attributes = a
    this._links.push(l)
    return this
  }

  addLinks (links) {
    if (Array.isArray(links)) {
      for (const l of links) this.addLink(l)
    }
    return this
  }

  end (endTime) {
    if (this._ended) return
    this._ended = true
    if (!this.sampled) return
    const end = Math.max(timeMs(endTime), this._start)
    const span = {
      traceId: this._traceId,
      spanId: this._spanId,
      name: this._name,
      kind: this._kind,
      startMs: this._start,
      endMs: end
    }
    if (this._parentId !== '') span.parentSpanId = this._parentId
    if (this._parentRemote) span.parentRemote = true
    if (this._attrs !== null) span.attributes = this._attrs
    if (this._status !== 'unset') {
      span.status = this._status
      if (this._statusMessage !== '') span.statusMessage = this._statusMessage
    }
    if (this._t.state.version < 4) {
      olderForm(span) // a wattd of an older release (protocol version 3)
    } else {
      if (this._events !== null) span.events = this._events
      if (this._links !== null) span.links = this._links
      if (this._scope !== null) span.scope = this._scope
    }
    sendSpan(this._t, this._out, span)
  }
}

// RequestSpan is a request's server span as the application sees it
// through @opentelemetry/api (trace.getActiveSpan(), see otelapi.cjs):
// what the application adds to it (attributes, events, links, a status, a
// name) is kept here, and the span ends with the response, not with end().
// store is the request's context (tracing.cjs), which holds the ids.
class RequestSpan extends AppSpan {
  constructor (t, out, store, traceId, spanId, parentId, traceState) {
    super(t, out, null, '', {}, { traceId: '', store })
    this.ids = store.ids
    this.off = store.off
    this.hasParent = store.hasParent
    this.sampled = store.sampled
    this._traceId = traceId
    this._spanId = spanId
    this._parentId = parentId
    this._traceState = traceState
    this._name = ''
    this._kind = 'server'
    this._start = store.startMs
  }

  // touched tells whether the application added anything to the span.
  get touched () {
    return this._attrs !== null || this._events !== null || this._links !== null || this._status !== 'unset' || this._name !== ''
  }

  // end does nothing: the request's span ends when its response does.
  end () {}

  // finish sends the span when the response closes, with the request's
  // fields (http: method, target, host, status, tls, incomplete) from which
  // wattd derives the name, attributes and status it gives every server
  // span; what the application set takes their place.
  finish (endMs, http) {
    this._ended = true
    const span = {
      traceId: this._traceId,
      spanId: this._spanId,
      name: this._name,
      kind: 'server',
      startMs: this._start,
      endMs: Math.max(endMs, this._start),
      http
    }
    if (this._parentId !== '') span.parentSpanId = this._parentId
    if (this._attrs !== null) span.attributes = this._attrs
    if (this._status !== 'unset') {
      span.status = this._status
      if (this._statusMessage !== '') span.statusMessage = this._statusMessage
    }
    if (this._events !== null) span.events = this._events
    if (this._links !== null) span.links = this._links
    sendSpan(this._t, this._out, span)
  }
}

// sendSpan queues a finished span, cut to MAX_SPAN_BYTES of JSON.
function sendSpan (t, out, span) {
  let bytes = Buffer.byteLength(JSON.stringify(span))
  if (bytes > MAX_SPAN_BYTES) {
    if (span.attributes !== undefined) span.attributes = firstAttributes(span.attributes, ATTRIBUTE_BYTES)
    if (span.events !== undefined) span.events = firstItems(span.events, EVENT_BYTES)
    if (span.links !== undefined) span.links = firstItems(span.links, LINK_BYTES)
    bytes = Buffer.byteLength(JSON.stringify(span))
  }
  queueSpan(t, out, span, bytes)
}

// olderForm turns the lists of a span's attributes into their JSON text:
// before protocol version 4, wattd takes neither lists nor events and links.
function olderForm (span) {
  const a = span.attributes
  if (a === undefined) return
  for (const k of Object.keys(a)) {
    if (Array.isArray(a[k])) a[k] = clip(JSON.stringify(a[k]), MAX_VALUE)
  }
}

// firstAttributes keeps attributes, in the order they were set, while their
// JSON takes at most budget bytes.
function firstAttributes (attrs, budget) {
  const out = Object.create(null)
  let used = 0
  for (const k of Object.keys(attrs)) {
    used += Buffer.byteLength(JSON.stringify(k)) + Buffer.byteLength(JSON.stringify(attrs[k])) + 2
    if (used > budget) break
    out[k] = attrs[k]
  }
  return out
}

// firstItems keeps the first items of a list whose JSON takes at most
// budget bytes.
function firstItems (list, budget) {
  let used = 0
  let n = 0
  for (; n < list.length; n++) {
    used += Buffer.byteLength(JSON.stringify(list[n])) + 1
    if (used > budget) break
  }
  return list.slice(0, n)
}

// attributesOf reads the attributes of an event or link as setAttribute
// reads a span's; null when there are none.
function attributesOf (src) {
  if (src === null || typeof src !== 'object') return null
  let out = null
  let n = 0
  for (const k of Object.keys(src)) {
    if (k === '' || n === MAX_ATTRIBUTES) continue
    const v = attributeValue(src[k])
    if (v === undefined) continue
    if (out === null) out = Object.create(null)
    const key = clip(k, MAX_KEY)
    if (!(key in out)) n++
    out[key] = v
  }
  return out
}

function isTimeInput (v) {
  return typeof v === 'number' || v instanceof Date ||
    (Array.isArray(v) && v.length === 2 && typeof v[0] === 'number' && typeof v[1] === 'number')
}

// attributeValue is what wattd takes of an attribute's value: a string,
// a finite number, a boolean, or a list of one of those kinds (its first
// MAX_ITEMS items), as the API allows; NaN and the infinities as text, a
// list of mixed kinds as its JSON text; anything else is left out.
function attributeValue (v) {
  switch (typeof v) {
    case 'string':
      return clip(v, MAX_VALUE)
    case 'boolean':
      return v
    case 'number':
      return Number.isFinite(v) ? v : String(v)
  }
  if (!Array.isArray(v)) return undefined
  const list = v.length > MAX_ITEMS ? v.slice(0, MAX_ITEMS) : v.slice()
  const kind = list.length === 0 ? 'string' : typeof list[0]
  let same = kind === 'string' || kind === 'boolean' || kind === 'number'
  for (let i = 0; same && i < list.length; i++) {
    const x = list[i]
    const k = typeof x
    if (k !== kind || (k === 'number' && !Number.isFinite(x))) same = false
    else if (kind === 'string') list[i] = clip(x, MAX_VALUE)
  }
  if (same) return list
  try {
    return clip(JSON.stringify(list, (k, x) => (typeof x === 'number' && !Number.isFinite(x)) ? String(x) : x), MAX_VALUE)
  } catch {
    return undefined
  }
}

// scopeOf is the instrumentation scope of a tracer's spans, its name and
// version, as the SDK records them; null for a tracer of no name.
function scopeOf (name, version) {
  const n = typeof name === 'string' ? clip(name, MAX_NAME) : ''
  if (n === '') return null
  const scope = { name: n }
  if (typeof version === 'string' && version !== '') scope.version = clip(version, MAX_NAME)
  return scope
}

// spanName is a name wattd takes: 1 to MAX_NAME characters.
function spanName (name) {
  let s
  try {
    s = typeof name === 'string' ? name : String(name)
  } catch {
    s = ''
  }
  return s === '' ? '(unnamed)' : clip(s, MAX_NAME)
}

function clip (s, n) {
  return s.length > n ? s.slice(0, n) : s
}

// timeMs reads the API's TimeInput as Unix epoch milliseconds: a Date, an
// [seconds, nanoseconds] pair, or a number, which is epoch milliseconds, or
// performance.now()'s when smaller than the time origin (as the SDK reads
// it). Anything else is now.
const { performance } = require('node:perf_hooks')
function timeMs (v) {
  let ms = -1
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) ms = v < performance.timeOrigin ? performance.timeOrigin + v : v
  else if (v instanceof Date) ms = v.getTime()
  else if (Array.isArray(v) && v.length === 2 && Number.isFinite(v[0]) && Number.isFinite(v[1])) ms = v[0] * 1000 + v[1] / 1e6
  return ms > 0 && ms < MAX_EPOCH_MS ? ms : nowMs()
}

function queueSpan (t, out, span, bytes) {
  if (out.queue.length >= MAX_QUEUED || bytes > MAX_MESSAGE_BYTES) {
    out.dropped(1)
    return
  }
  out.queue.push({ span, bytes })
  if (out.queue.length >= MAX_PER_MESSAGE) {
    out.flush()
  } else if (out.timer === null) {
    out.timer = setTimeout(() => {
      out.timer = null
      out.flush()
    }, SEND_EVERY_MS)
    out.timer.unref()
  }
}

function flushSpans (t, out) {
  if (out.timer !== null) {
    clearTimeout(out.timer)
    out.timer = null
  }
  const sock = t.state.control
  if (sock !== null && typeof sock.writableLength === 'number' && sock.writableLength > MAX_BACKLOG) {
    out.dropped(out.queue.length)
    out.queue = []
    return
  }
  const queue = out.queue
  out.queue = []
  for (let i = 0; i < queue.length;) {
    const spans = []
    let bytes = 0
    while (i < queue.length && spans.length < MAX_PER_MESSAGE && bytes + queue[i].bytes <= MAX_MESSAGE_BYTES) {
      spans.push(queue[i].span)
      bytes += queue[i].bytes + 1
      i++
    }
    if (spans.length === 0) { // cannot be: queueSpan takes none larger
      i++
      continue
    }
    try {
      send(t.state, { type: 'spans', spans })
    } catch (err) {
      warn('tracing: sending the application\'s spans', err)
    }
  }
}

module.exports = { appTracing, AppSpan, RequestSpan }
