// Tracing and request ids.
//
// When the app info file turns them on (fields "tracing" and "requestId",
// see docs/observability.md), one per-request hook (requests.cjs) gives each
// request a context, kept in an AsyncLocalStorage entered in the hook, so
// that the app's handler and everything it continues asynchronously see it:
//
//   * Request id: the request's id header kept, or a random UUID made the
//     first time it is needed, passed on every mesh call; set on the
//     response too when the configuration turned request ids on itself.
//   * Server span: the request's span, child of the caller's span when the
//     request carries a valid W3C traceparent, else the root of a new
//     trace; it ends when the response closes. Requests matching the
//     tracing "skip" list get no span. Whether a trace is recorded is the
//     sampler's call (OTEL_TRACES_SAMPLER, read by wattd, see sampled());
//     one that is not still has its ids, which travel on in traceparent
//     with the sampled flag off and stand on the request's log lines.
//   * Client spans: every mesh call (*.plt.local through node:http, fetch
//     and the npm undici package) made in that context is a span, child of
//     the server span, and carries a traceparent naming it, so the called
//     app's server span becomes its child. So is a call to another host
//     (node:http, node:https, fetch, undici), which carries the trace
//     context but not the request id.
//   * Log lines written through globalThis.platformatic.logger in that
//     context carry reqId, traceId and spanId.
//
// Ids are bytes (tracecontext.cjs), formatted as hex only for a log line
// or a traceparent header. Finished spans are written into binary spans
// frames (protocol version 3, ipc/spanbin.go), sent to wattd on the
// control channel as soon as one holds MAX_BATCH spans and otherwise every
// SEND_EVERY_MS; wattd names and describes them and exports them.
//
// With both features off nothing here runs: no hook, no storage, no patch.
'use strict'

const { randomUUID } = require('node:crypto')
const { warn, guard } = require('./base.cjs')
const { sendFrame } = require('./control.cjs')
const { onRequest } = require('./requests.cjs')
const { setLineFields } = require('./logger.cjs')
const { MESH_HOST } = require('./mesh-client.cjs')
const {
  parseTraceparent, formatTraceparent, takeIds, idSlab, hexOf, nowMs, TRACE_ID, SPAN_ID, PARENT_ID, SUPPRESS_KEY
} = require('./tracecontext.cjs')

const SEND_EVERY_MS = 200
const MAX_BATCH = 4096 // spans per frame, wattd's limit (ipc.MaxSpansPerFrame)
const MAX_QUEUED = 8192 // spans waiting to be sent; more are dropped
const BATCH_BYTES = 512 * 1024 // buffer of one frame, see writeSpan
const MAX_BACKLOG = 4 << 20 // bytes written to the control channel and not read yet
const MAX_VALUE = 4096 // characters of a target or host sent
const MAX_METHOD = 64 // bytes of a method wattd takes
const MAX_REQUEST_ID = 256 // a longer incoming id is replaced
// W3C Trace Context: a tracestate has at most 32 list-members, and a
// platform that must cut it keeps 512 characters at least, removing the
// members longer than 128 first, then from the end (boundTracestate).
const MAX_TRACESTATE = 512
const MAX_TRACESTATE_MEMBERS = 32
const MAX_TRACESTATE_MEMBER = 128

// The binary spans frame (ipc/spanbin.go).
const TAG_SPANS = 0x01
const KIND_SERVER = 1
const KIND_CLIENT = 2
const F_PARENT = 0x01
const F_INCOMPLETE = 0x02
const F_TLS = 0x04
const F_RAW_IDS = 0x08 // always: ids are bytes (version 3)

const kContext = Symbol('wattd.requestContext') // ServerResponse -> its context
const kSpan = Symbol('wattd.clientSpan') // ClientRequest or undici request -> its span

// The tracer of the process, for the shared close handlers, which would
// otherwise need a closure per request.
let theTracer = null

// RequestContext is what a request's code sees. It is also the record of
// the request's server span, so a traced request allocates one object.
class RequestContext {
  constructor () {
    this.reqId = '' // kept or made; '' until needed (requestIdOf) and when off
    this.traced = false // false when tracing is off or the request skipped
    this.ids = null // with traced: the slab of the ids (tracecontext.cjs)
    this.off = 0 // and their record in it
    this.hasParent = false // false for a root span
    this.traceHex = '' // the trace and span ids in hex, made when asked for
    this.spanHex = ''
    this.sampled = false // recorded and sent (the caller's sampled flag)
    this.tracestate = '' // passed on as it came
    this.logFields = null // rendered log fields, made at the first line
    // For @opentelemetry/api (otelapi.cjs): the span this context is of as
    // the API shows it (the request's RequestSpan, made when asked for, or
    // the application span made active), and the API's Context of it.
    this.span = null
    this.api = null
    // Server span fields, read from the request at its start: the
    // context, which the request's continuations keep, holds no request.
    this.startMs = 0
    this.method = ''
    this.url = ''
    this.host = ''
    this.secure = false
  }
}

// ClientSpan is one mesh call: a child of the request ctx, or with ctx
// null the root of a new trace.
class ClientSpan {
  constructor (ctx, method, url, host, port) {
    const o = takeIds()
    const ids = idSlab()
    this.ids = ids
    this.off = o
    this.hasParent = ctx !== null
    if (ctx !== null) {
      const p = ctx.ids
      const po = ctx.off
      for (let i = 0; i < 16; i++) ids[o + TRACE_ID + i] = p[po + TRACE_ID + i]
      for (let i = 0; i < 8; i++) ids[o + PARENT_ID + i] = p[po + SPAN_ID + i]
    }
    this.startMs = nowMs()
    this.endMs = 0
    this.method = method
    this.url = url // scheme://host[:port]/path, without the query
    this.host = host
    this.port = port
    this.status = 0 // 0: no response
    this.ended = false
  }
}

// ---- start -----------------------------------------------------------------

// startTracing reads the app info's tracing and requestId settings and, if
// either is on (index.cjs loads this module only then), registers the
// request hook, hooks the mesh client and the logger, and starts the span
// sender. It returns the tracer, or null.
// boundTracestate returns a caller's tracestate as it is passed on: as it
// came when within the specification's bounds, or else without its empty
// members, without those over MAX_TRACESTATE_MEMBER characters, and then
// without members from the end until at most MAX_TRACESTATE_MEMBERS and
// MAX_TRACESTATE characters remain ('' when none does). A caller cannot
// make every mesh call of the request carry kilobytes of it.
function boundTracestate (ts) {
  if (ts.length <= MAX_TRACESTATE && !overMembers(ts)) return ts
  const members = ts.split(',').map((m) => m.trim()).filter((m) => m !== '' && m.length <= MAX_TRACESTATE_MEMBER)
  members.length = Math.min(members.length, MAX_TRACESTATE_MEMBERS)
  while (members.length > 0 && members.join(',').length > MAX_TRACESTATE) members.pop()
  return members.join(',')
}

// overMembers tells whether ts has more than MAX_TRACESTATE_MEMBERS
// comma-separated members, without splitting it (a request's common
// case is a short header, checked at no cost).
function overMembers (ts) {
  if (ts.length < MAX_TRACESTATE_MEMBERS) return false
  let commas = 0
  for (let i = ts.indexOf(','); i !== -1; i = ts.indexOf(',', i + 1)) {
    if (++commas >= MAX_TRACESTATE_MEMBERS) return true
  }
  return false
}

function startTracing (state, info) {
  const t = newTracer(state, info)
  if (t === null) return null
  const { AsyncLocalStorage } = require('node:async_hooks')
  t.storage = new AsyncLocalStorage()
  theTracer = t
  onRequest(state, (req, res) => requestHook(t, req, res))
  setLineFields((withReqId) => {
    const ctx = t.storage.getStore()
    if (ctx === undefined) return ''
    return withReqId ? logFields(t, ctx) : traceFields(t, ctx)
  })
  if (state.mesh !== null) {
    // Each returns null (no span) rather than throw into the app's call.
    state.mesh.outgoing = {
      startHttp: orNull((opts) => startHttpCall(t, opts)),
      endHttp: orNull((span, req) => watchHttpCall(span, req)),
      startFetch: orNull((job) => startFetchCall(t, job)),
      endFetch: orNull((span, status) => endClientSpan(t, span, status))
    }
  }
  if (t.tracing) {
    // The application's own spans (globalThis.platformatic.tracerProvider).
    t.app = require('./appspans.cjs').appTracing(t, {
      sampled,
      dropped,
      traceIdOf,
      spanIdOf,
      context: (span) => appSpanContext(t, span)
    })
    state.tracerProvider = t.app.provider
    // @opentelemetry/api's context manager and propagator, when the app
    // has the API.
    try {
      require('./otelapi.cjs').registerOtelApi(t, typeof info.root === 'string' && info.root ? info.root : process.cwd(), {
        requestIdOf: (ctx) => requestIdOf(t, ctx),
        traceIdOf,
        spanIdOf,
        appSpanContext: (span) => appSpanContext(t, span),
        newContext: () => new RequestContext()
      })
    } catch (err) {
      warn('tracing: @opentelemetry/api left as it is after an internal error', err)
    }
    subscribeUndici(t)
    patchOutgoingHttp(t)
    // Best effort at the end: before wattd hears "drained", and when the
    // event loop empties.
    const before = state.beforeDrained
    state.beforeDrained = () => {
      flush(t)
      if (typeof before !== 'function') return undefined
      return Promise.resolve().then(before).finally(() => flush(t))
    }
    process.on('beforeExit', guard('tracing', () => flush(t)))
  }
  return t
}

// appSpanContext is the request context of the code an application span
// made active (startActiveSpan) runs: that of the request it was made in,
// with the span in place of the server span, so that log lines carry its
// id and mesh calls are its children.
function appSpanContext (t, span) {
  const ctx = new RequestContext()
  const outer = span.store
  if (outer !== undefined) {
    ctx.reqId = requestIdOf(t, outer)
    ctx.tracestate = outer.tracestate
  }
  ctx.traced = true
  ctx.ids = span.ids
  ctx.off = span.off
  ctx.hasParent = span.hasParent
  ctx.sampled = span.sampled
  ctx.span = span
  // The span has its ids in hex already: log lines and traceparents read them.
  const sc = span.spanContext()
  ctx.traceHex = sc.traceId
  ctx.spanHex = sc.spanId
  return ctx
}

function orNull (fn) {
  return function (a, b) {
    try {
      return fn(a, b)
    } catch (err) {
      warn('tracing', err)
      return null
    }
  }
}

// newTracer builds the settings from the app info, or returns null when
// both features are off.
function newTracer (state, info) {
  const tr = info && typeof info.tracing === 'object' && info.tracing !== null ? info.tracing : null
  const ri = info && typeof info.requestId === 'object' && info.requestId !== null ? info.requestId : null
  if (tr === null && ri === null) return null
  let header = ''
  if (ri !== null) header = typeof ri.header === 'string' && ri.header !== '' ? ri.header.toLowerCase() : 'x-request-id'
  const sampler = samplerOf(tr)
  return {
    state,
    tracing: tr !== null,
    skip: tr !== null ? compileSkip(tr.skip) : [],
    idHeader: header,
    respondId: ri !== null && ri.response === true,
    // The sampler (sampled()): whether a span with a parent follows its
    // sampled flag, and how a root is decided.
    followParent: sampler.followParent,
    root: sampler.root,
    boundHi: sampler.boundHi,
    boundLo: sampler.boundLo,
    storage: null,
    otelApi: false, // @opentelemetry/api's context manager is the preload's
    app: null, // the application's own spans (appspans.cjs), with tracing
    batch: null, // the frame being filled, see writeSpan
    sealed: [], // full frames waiting to be sent
    free: [], // buffers of frames written, for the next ones
    queued: 0, // spans in batch and sealed
    timer: null,
    dropped: 0,
    droppedWarned: 0 // performance.now() of the last warning
  }
}

// How a sampler decides a root span.
const ROOT_ON = 0
const ROOT_OFF = 1
const ROOT_RATIO = 2
const TWO_63 = 2 ** 63
const TWO_31 = 2 ** 31

// samplerOf reads the app info's sampler: an OTEL_TRACES_SAMPLER name and,
// for the traceidratio ones, the ratio (ipc.TracingInfo). wattd checked
// them; a name it does not know here is taken as the default rather than
// turning tracing off.
function samplerOf (tr) {
  const out = { followParent: true, root: ROOT_ON, boundHi: 0, boundLo: 0 }
  if (tr === null) return out
  let name = typeof tr.sampler === 'string' ? tr.sampler : ''
  if (name.startsWith('parentbased_')) {
    name = name.slice('parentbased_'.length)
  } else if (name !== '') {
    out.followParent = false
  }
  switch (name) {
    case 'always_off':
      out.root = ROOT_OFF
      break
    case 'traceidratio': {
      const r = typeof tr.ratio === 'number' && tr.ratio >= 0 && tr.ratio <= 1 ? tr.ratio : 1
      // The bound, r × 2^63 truncated as Go's uint64() does, in two parts
      // that doubles hold exactly: above and below bit 31.
      const bound = r * TWO_63
      out.root = ROOT_RATIO
      out.boundHi = Math.floor(bound / TWO_31)
      out.boundLo = Math.floor(bound - out.boundHi * TWO_31)
      break
    }
    case '':
    case 'always_on':
      break
    default:
      warn(`tracing: unknown sampler ${JSON.stringify(tr.sampler)}; every trace is recorded`)
      out.followParent = true
  }
  return out
}

// sampled decides whether the span whose ids are at ids[o] is recorded.
// parent is the caller's sampled flag, or null for a root span. The ratio
// rule is OpenTelemetry Go SDK's, so Go workers decide a trace as these
// do: the trace id's last 8 bytes, big-endian, shifted right by one, below
// ratio × 2^63. That 63-bit number is hi × 2^31 + lo with hi the first four
// of those bytes and lo the last four shifted, compared part by part: as
// one double it would lose its low bits.
function sampled (t, ids, o, parent) {
  if (parent !== null && t.followParent) return parent
  if (t.root === ROOT_ON) return true
  if (t.root === ROOT_OFF) return false
  const hi = ids.readUInt32BE(o + TRACE_ID + 8)
  return hi < t.boundHi || (hi === t.boundHi && (ids.readUInt32BE(o + TRACE_ID + 12) >>> 1) < t.boundLo)
}

// compileSkip turns the skip list into [{method, path | re}]. A path that
// starts and ends with "/" is a regular expression source; an empty one
// (a method alone) is every path.
function compileSkip (list) {
  const out = []
  if (!Array.isArray(list)) return out
  for (const s of list) {
    if (s === null || typeof s !== 'object') continue
    const method = typeof s.method === 'string' && s.method !== '' ? s.method.toUpperCase() : ''
    const p = typeof s.path === 'string' ? s.path : ''
    if (p === '' && method === '') continue
    if (p.length > 1 && p.startsWith('/') && p.endsWith('/')) {
      try {
        out.push({ method, path: null, re: new RegExp(p.slice(1, -1)) })
      } catch (err) {
        warn(`tracing skip: ${p} is not a valid regular expression; ignored`, err)
      }
    } else {
      out.push({ method, path: p, re: null })
    }
  }
  return out
}

function skipped (t, method, path) {
  const list = t.skip
  for (let i = 0; i < list.length; i++) {
    const s = list[i]
    if (s.method !== '' && s.method !== method) continue
    if (s.re !== null ? s.re.test(path) : s.path === '' || s.path === path) return true
  }
  return false
}

// ---- server side -----------------------------------------------------------

// requestHook runs for every request (see requests.cjs). It reads the
// headers it needs from rawHeaders in one pass rather than through
// req.headers, which Node builds on first use only and many apps never ask
// for.
function requestHook (t, req, res) {
  const ctx = new RequestContext()
  let traceparent
  let tracestate
  let incomingId
  const raw = req.rawHeaders
  const idHeader = t.idHeader
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]
    switch (name.length) {
      case 4:
        if (ctx.host === '' && (name === 'Host' || sameName(name, 'host'))) ctx.host = raw[i + 1]
        break
      case 10:
        if (sameName(name, 'tracestate')) tracestate = tracestate === undefined ? raw[i + 1] : tracestate + ',' + raw[i + 1]
        break
      case 11:
        // Two traceparent headers make the value invalid, as the spec wants.
        if (sameName(name, 'traceparent')) traceparent = traceparent === undefined ? raw[i + 1] : ''
        break
    }
    if (name.length === idHeader.length && incomingId === undefined && sameName(name, idHeader)) {
      incomingId = raw[i + 1]
    }
  }
  if (idHeader !== '') {
    if (incomingId !== undefined && incomingId !== '' && incomingId.length <= MAX_REQUEST_ID) ctx.reqId = incomingId
    // Otherwise one is made when a log line or a mesh call needs it, or
    // here when the response carries it.
    if (t.respondId) {
      if (ctx.reqId === '') ctx.reqId = randomUUID()
      if (!res.headersSent) res.setHeader(idHeader, ctx.reqId)
    }
  }
  if (t.tracing) {
    const url = req.url || '/'
    const q = url.indexOf('?')
    if (!skipped(t, req.method, q === -1 ? url : url.slice(0, q))) {
      ctx.traced = true
      const o = takeIds()
      const ids = idSlab()
      ctx.ids = ids
      ctx.off = o
      const parent = traceparent !== undefined ? parseTraceparent(traceparent) : null
      if (parent !== null) {
        ids.write(parent.traceId, o + TRACE_ID, 16, 'hex')
        ids.write(parent.parentId, o + PARENT_ID, 8, 'hex')
        ctx.traceHex = parent.traceId
        ctx.hasParent = true
        ctx.sampled = sampled(t, ids, o, parent.sampled)
        if (tracestate !== undefined) ctx.tracestate = boundTracestate(tracestate)
      } else {
        ctx.sampled = sampled(t, ids, o, null) // by default every request, as in Watt
      }
      if (ctx.sampled) {
        ctx.startMs = nowMs()
        ctx.method = req.method
        ctx.url = url
        ctx.secure = req.socket !== null && req.socket !== undefined && req.socket.encrypted === true
        res[kContext] = ctx
        res.on('close', onServerResponseClose) // one shared function: no closure per request
      }
    }
  }
  // Also for a request without any id: the connection's previous request
  // must not leak into this one.
  t.storage.enterWith(ctx)
}

// sameName compares a header name with a lower-case one of the same
// length, lower-casing (which allocates) only when the first letter could
// match.
function sameName (name, lower) {
  if (name === lower) return true
  const c = name.charCodeAt(0) | 0x20
  return c === lower.charCodeAt(0) && name.toLowerCase() === lower
}

function onServerResponseClose () {
  try {
    const c = this[kContext]
    const rs = c.span
    if (rs !== null && rs.touched === true && theTracer.state.version >= 5) {
      // The application added to the span (otelapi.cjs): sent with what it
      // added, as JSON.
      rs.finish(nowMs(), {
        method: c.method.length > MAX_METHOD ? c.method.slice(0, MAX_METHOD) : c.method,
        target: c.url.length > MAX_VALUE ? c.url.slice(0, MAX_VALUE) : c.url,
        host: c.host.length > MAX_VALUE ? c.host.slice(0, MAX_VALUE) : c.host,
        status: this.statusCode,
        tls: c.secure,
        incomplete: !this.writableFinished
      })
      return
    }
    const flags = (c.hasParent ? F_PARENT : 0) | (this.writableFinished ? 0 : F_INCOMPLETE) | (c.secure ? F_TLS : 0)
    writeSpan(theTracer, KIND_SERVER, flags, this.statusCode, c.startMs, nowMs(), c.ids, c.off, c.method, c.url, c.host, 0)
  } catch (err) {
    warn('tracing', err)
  }
}

// requestIdOf returns the request's id, making it the first time, or ''
// when request ids are off.
function requestIdOf (t, ctx) {
  if (ctx.reqId === '' && t.idHeader !== '') ctx.reqId = randomUUID()
  return ctx.reqId
}

// traceIdOf and spanIdOf return a traced request's ids in hex.
function traceIdOf (ctx) {
  if (ctx.traceHex === '') ctx.traceHex = hexOf(ctx.ids, ctx.off + TRACE_ID, 16)
  return ctx.traceHex
}

function spanIdOf (ctx) {
  if (ctx.spanHex === '') ctx.spanHex = hexOf(ctx.ids, ctx.off + SPAN_ID, 8)
  return ctx.spanHex
}

// logFields renders the context's log fields once.
function logFields (t, ctx) {
  let f = ctx.logFields
  if (f === null) {
    f = ''
    const id = requestIdOf(t, ctx)
    if (id !== '') f += ',"reqId":' + JSON.stringify(id)
    f += traceFields(t, ctx)
    ctx.logFields = f
  }
  return f
}

// traceFields is logFields without the request id, for a logger whose
// bindings have a reqId of their own.
function traceFields (t, ctx) {
  return ctx.traced ? ',"traceId":"' + traceIdOf(ctx) + '","spanId":"' + spanIdOf(ctx) + '"' : ''
}

// ---- client side -----------------------------------------------------------

// outgoing returns what a call made in the current context adds to its
// request: [name, value] pairs, and the call's span or null. A mesh call
// carries the request id too; a call to another host (external) only the
// trace context.
function outgoing (t, method, url, host, port, has, external) {
  const ctx = t.storage.getStore()
  const add = []
  let span = null
  if (ctx !== undefined && t.idHeader !== '' && !external && !has(t.idHeader)) add.push(t.idHeader, requestIdOf(t, ctx))
  // Code that OpenTelemetry's SDK runs with tracing suppressed (its own
  // exporters' requests, through context.with, see otelapi.cjs) makes no
  // span and passes no trace context on.
  const suppressed = ctx !== undefined && ctx.api !== null && ctx.api.getValue(SUPPRESS_KEY) === true
  if (t.tracing && !suppressed && !has('traceparent')) {
    if (ctx === undefined) {
      // Outside any request (a timer, start-up code): the call starts a
      // trace, which the sampler may leave unrecorded.
      span = new ClientSpan(null, method, url, host, port)
      if (!sampled(t, span.ids, span.off, null)) {
        add.push('traceparent', formatTraceparent(hexOf(span.ids, span.off + TRACE_ID, 16), hexOf(span.ids, span.off + SPAN_ID, 8), false))
        span = null
      }
    } else if (ctx.traced && ctx.sampled) {
      span = new ClientSpan(ctx, method, url, host, port)
    }
    if (span !== null) {
      add.push('traceparent', formatTraceparent(hexOf(span.ids, span.off + TRACE_ID, 16), hexOf(span.ids, span.off + SPAN_ID, 8), true))
    } else if (ctx !== undefined && ctx.traced) {
      // Traced but not sampled: the decision travels on, nothing is recorded.
      add.push('traceparent', formatTraceparent(traceIdOf(ctx), spanIdOf(ctx), false))
    }
    if (ctx !== undefined && ctx.tracestate !== '' && !has('tracestate')) add.push('tracestate', ctx.tracestate)
  }
  return { add, span }
}

// startHttpCall adds the headers to the options of a node:http mesh request
// (a copy of the app's headers, in the form it gave them) and returns the
// call's span or null.
function startHttpCall (t, opts) {
  const method = typeof opts.method === 'string' && opts.method !== '' ? opts.method.toUpperCase() : 'GET'
  const host = String(opts.hostname || opts.host || '').toLowerCase()
  const port = opts.port != null && opts.port !== '' ? Number(opts.port) : 80
  let path = opts.path == null || opts.path === '' ? '/' : String(opts.path)
  const q = path.indexOf('?')
  if (q !== -1) path = path.slice(0, q)
  const url = 'http://' + host + (port !== 80 ? ':' + port : '') + path
  const h = opts.headers
  const isArray = Array.isArray(h)
  const has = (name) => {
    if (h === null || typeof h !== 'object') return false
    if (isArray) {
      for (let i = 0; i < h.length; i += 2) {
        if (String(h[i]).toLowerCase() === name) return true
      }
      return false
    }
    for (const k of Object.keys(h)) {
      if (k.toLowerCase() === name) return true
    }
    return false
  }
  const { add, span } = outgoing(t, method, url, host, port, has)
  if (add.length > 0) {
    if (isArray) {
      opts.headers = h.concat(add)
    } else {
      const copy = Object.assign({}, h)
      for (let i = 0; i < add.length; i += 2) copy[add[i]] = add[i + 1]
      opts.headers = copy
    }
  }
  return span
}

// watchHttpCall ends the span when the request closes: after its response
// has been read, or when it failed. No 'response' or 'error' listener is
// added, since either would change what node:http does for an app that has
// none (a response nobody listens to is discarded; an unhandled error
// throws).
function watchHttpCall (span, req) {
  req[kSpan] = span
  req.once('close', onClientRequestClose)
}

function onClientRequestClose () {
  try {
    const res = this.res
    endClientSpan(theTracer, this[kSpan], res !== null && res !== undefined ? res.statusCode : 0)
  } catch (err) {
    warn('tracing', err)
  }
}

// startFetchCall adds the headers to a mesh fetch (job.headers is a plain
// object with lower-case names, which is never changed in place) and
// returns the call's span or null.
function startFetchCall (t, job) {
  const h = job.headers
  const u = job.url
  const port = u.port !== '' ? Number(u.port) : 80
  const url = u.protocol + '//' + u.host + u.pathname
  const { add, span } = outgoing(t, job.method, url, u.hostname.toLowerCase(), port, (name) => h[name] !== undefined)
  if (add.length > 0) {
    const copy = Object.assign(Object.create(null), h)
    for (let i = 0; i < add.length; i += 2) copy[add[i]] = add[i + 1]
    job.headers = copy
  }
  return span
}

function endClientSpan (t, span, status) {
  if (span === null || span === undefined || span.ended) return
  span.ended = true
  span.endMs = nowMs()
  span.status = typeof status === 'number' ? status : 0
  writeSpan(t, KIND_CLIENT, span.hasParent ? F_PARENT : 0, span.status, span.startMs, span.endMs,
    span.ids, span.off, span.method, span.url, span.host, span.port)
}

// subscribeUndici makes client spans of the npm undici package's mesh
// requests, through the diagnostics channels every undici publishes on.
// Node's own fetch publishes there too; its mesh requests never reach
// undici (mesh-client.cjs makes them with node:http), so only the npm
// package's are seen here.
function subscribeUndici (t) {
  let dc
  try {
    dc = require('node:diagnostics_channel')
  } catch {
    return
  }
  dc.subscribe('undici:request:create', guard('tracing', ({ request }) => {
    let origin
    try {
      origin = new URL(String(request.origin))
    } catch {
      return
    }
    const external = origin.protocol !== 'http:' || !MESH_HOST.test(origin.hostname)
    if ((external && origin.protocol !== 'https:' && origin.protocol !== 'http:') || typeof request.addHeader !== 'function') return
    const headers = request.headers
    const has = (name) => {
      if (Array.isArray(headers)) {
        for (let i = 0; i < headers.length; i += 2) {
          if (String(headers[i]).toLowerCase() === name) return true
        }
        return false
      }
      // undici 6 keeps them as "name: value\r\n" lines.
      return typeof headers === 'string' && headers.toLowerCase().split('\r\n').some((l) => l.startsWith(name + ':'))
    }
    let path = typeof request.path === 'string' ? request.path : '/'
    const q = path.indexOf('?')
    if (q !== -1) path = path.slice(0, q)
    const host = origin.hostname.toLowerCase()
    const port = origin.port !== '' ? Number(origin.port) : origin.protocol === 'https:' ? 443 : 80
    const method = String(request.method || 'GET').toUpperCase()
    const { add, span } = outgoing(t, method, origin.origin + path, host, port, has, external)
    for (let i = 0; i < add.length; i += 2) request.addHeader(add[i], add[i + 1])
    if (span !== null) request[kSpan] = span
  }))
  dc.subscribe('undici:request:headers', guard('tracing', ({ request, response }) => {
    const span = request[kSpan]
    if (span !== undefined) span.status = response.statusCode
  }))
  dc.subscribe('undici:request:trailers', guard('tracing', ({ request }) => {
    const span = request[kSpan]
    if (span !== undefined) endClientSpan(t, span, span.status)
  }))
  dc.subscribe('undici:request:error', guard('tracing', ({ request }) => {
    const span = request[kSpan]
    if (span !== undefined) endClientSpan(t, span, 0)
  }))
}

// patchOutgoingHttp makes client spans of the calls to other hosts made
// with node:http and node:https (request, get), and passes the trace
// context on to them, as OpenTelemetry's HTTP instrumentation does under
// Watt. Mesh calls are left to the mesh client (startHttpCall). A call
// whose headers were given as an array is sent as it is: they are written
// when the request is made, so nothing can be added.
function patchOutgoingHttp (t) {
  for (const name of ['node:http', 'node:https']) {
    const mod = require(name)
    const request = mod.request
    mod.request = function (...args) {
      const req = Reflect.apply(request, this, args)
      try {
        startExternalCall(t, req)
      } catch (err) {
        warn('tracing', err)
      }
      return req
    }
    // As node:http's own get: through request, so that the headers are
    // added before end() writes them.
    mod.get = function (...args) {
      const req = mod.request(...args)
      req.end()
      return req
    }
  }
}

function startExternalCall (t, req) {
  if (req === null || typeof req !== 'object' || req.headersSent || req[kSpan] !== undefined || typeof req.setHeader !== 'function') return
  const host = String(req.host || '').toLowerCase()
  if (MESH_HOST.test(host) || req.hasHeader('traceparent')) return
  const secure = req.protocol === 'https:'
  // The Host header has the port when it is not the protocol's.
  const hostHeader = req.getHeader('host')
  let port = secure ? 443 : 80
  if (typeof hostHeader === 'string') {
    const c = hostHeader.lastIndexOf(':')
    if (c > hostHeader.lastIndexOf(']')) port = Number(hostHeader.slice(c + 1)) || port
  }
  let path = typeof req.path === 'string' && req.path !== '' ? req.path : '/'
  const q = path.indexOf('?')
  if (q !== -1) path = path.slice(0, q)
  const authority = typeof hostHeader === 'string' && hostHeader !== '' ? hostHeader : host
  const url = (secure ? 'https://' : 'http://') + authority + path
  const method = typeof req.method === 'string' && req.method !== '' ? req.method : 'GET'
  const { add, span } = outgoing(t, method, url, host, port, (n) => req.hasHeader(n), true)
  for (let i = 0; i < add.length; i += 2) req.setHeader(add[i], add[i + 1])
  if (span !== null) watchHttpCall(span, req)
}

// ---- spans on the wire -----------------------------------------------------

// A finished span is written at once into the frame that will carry it,
// and nothing of the request is kept: spans waiting to be sent then cost
// the garbage collector nothing, where thousands of span objects living
// for SEND_EVERY_MS would each be copied and promoted. A frame is a buffer
// holding its length, the tag, the count of spans and the spans; flush
// fills in the length and count and writes it. The record's layout is
// ipc/spanbin.go's; wattd derives the span's name and attributes.
function writeSpan (t, kind, flags, status, startMs, endMs, ids, idOff, method, target, host, port) {
  if (t.queued >= MAX_QUEUED) {
    dropped(t, 1)
    return
  }
  if (target.length > MAX_VALUE) target = target.slice(0, MAX_VALUE)
  if (host.length > MAX_VALUE) host = host.slice(0, MAX_VALUE)
  if (method.length > MAX_METHOD) method = method.slice(0, MAX_METHOD) // wattd refuses the span
  // Room for the record with its strings in UTF-8 at worst.
  const room = 60 + method.length + 3 * (target.length + host.length) + 8
  let b = t.batch
  if (b !== null && b.buf.length - b.len < room) {
    t.sealed.push(b)
    b = null
  }
  if (b === null) {
    b = newBatch(t, room)
    t.batch = b
  }
  const buf = b.buf
  let o = b.len
  buf[o] = kind
  buf[o + 1] = flags | F_RAW_IDS
  buf[o + 2] = status & 0xff
  buf[o + 3] = (status >>> 8) & 0xff
  buf.writeDoubleLE(startMs, o + 4)
  buf.writeDoubleLE(endMs, o + 12)
  o += 20
  // The trace and span ids, then the parent's: they follow each other in
  // the record (tracecontext.cjs).
  const idBytes = (flags & F_PARENT) !== 0 ? 32 : 24
  for (let i = 0; i < idBytes; i++) buf[o + i] = ids[idOff + i]
  o += idBytes
  const head = o
  o += 3
  const ml = writeText(buf, o, method)
  o += ml
  buf[o++] = 0x20
  const tl = writeText(buf, o, target)
  o += tl
  buf[head] = ml
  buf[head + 1] = tl & 0xff
  buf[head + 2] = tl >>> 8
  const hl = host === '' ? 0 : writeText(buf, o + 2, host)
  buf[o] = hl & 0xff
  buf[o + 1] = hl >>> 8
  o += 2 + hl
  buf[o] = port & 0xff
  buf[o + 1] = (port >>> 8) & 0xff
  b.len = o + 2
  b.count++
  t.queued++
  if (b.count === MAX_BATCH) {
    // A full frame goes at once: under load spans then wait for no timer.
    flush(t)
  } else if (t.timer === null) {
    t.timer = setTimeout(onSendTimer, SEND_EVERY_MS, t)
    t.timer.unref()
  }
}

// writeText writes s into buf at o as UTF-8 and returns its bytes: in
// JavaScript for the short ASCII strings of most requests, where a call
// into Buffer's native writer would cost more than the copy.
function writeText (buf, o, s) {
  const n = s.length
  if (n > 128) return buf.utf8Write(s, o)
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i)
    if (c >= 0x80) return buf.utf8Write(s, o)
    buf[o + i] = c
  }
  return n
}

// dropped counts spans that could not be sent, with a warning a minute at
// most.
function dropped (t, n) {
  t.dropped += n
  const now = performance.now()
  if (now - t.droppedWarned > 60000) {
    t.droppedWarned = now
    warn(`tracing: ${t.dropped} spans dropped so far: more were waiting to be sent than wattd takes in`)
  }
}

// A frame starts with its length (4 bytes, big-endian, filled in by
// flush), the tag and the count of spans (2 bytes, little-endian, idem).
const FRAME_HEAD = 7

// newBatch starts a frame, in the buffer of one already written when
// there is one: fresh memory for every frame would cost page faults.
function newBatch (t, room) {
  let buf = null
  while (t.free.length > 0 && buf === null) {
    const b = t.free.pop()
    if (b.length >= FRAME_HEAD + room) buf = b
  }
  if (buf === null) buf = Buffer.allocUnsafe(Math.max(BATCH_BYTES, FRAME_HEAD + room))
  buf[4] = TAG_SPANS
  return { buf, len: FRAME_HEAD, count: 0 }
}

// MAX_FREE buffers are kept for reuse.
const MAX_FREE = 2

function recycle (t, buf) {
  if (t.free.length < MAX_FREE && buf.length === BATCH_BYTES) t.free.push(buf)
}

function onSendTimer (t) {
  t.timer = null
  flush(t)
}

// flush sends every waiting frame. One that cannot be written is
// dropped; nothing reaches the app.
function flush (t) {
  if (t.app !== null) t.app.flush()
  const list = t.sealed
  if (t.batch !== null) list.push(t.batch)
  t.batch = null
  t.sealed = []
  t.queued = 0
  // What wattd has not read yet counts against the bound too: a wattd that
  // falls behind must not make the worker hold ever more.
  const sock = t.state.control
  const backlog = sock !== null && typeof sock.writableLength === 'number' ? sock.writableLength : 0
  if (backlog > MAX_BACKLOG || t.state.version < 3) {
    for (const b of list) dropped(t, b.count)
    return
  }
  for (const b of list) {
    const buf = b.buf
    if (b.count === 0) {
      recycle(t, buf)
      continue
    }
    buf.writeUInt32BE(b.len - 4, 0)
    buf[5] = b.count & 0xff
    buf[6] = b.count >>> 8
    sendFrame(t.state, buf.subarray(0, b.len), (err) => { if (!err) recycle(t, buf) })
  }
}

module.exports = { startTracing }
