'use strict'
// An app for the tracing tests (tracing_test.go), written as if wattd did
// not exist except for globalThis.platformatic.logger. Routes:
//   /ctx?tag=T&ms=M  logs "ctx line" from the handler, after a timer of M ms
//                    (through a child logger), after an await, from
//                    setImmediate and from a request body 'end' handler,
//                    each line with tag T, then answers its reqId as seen
//   /call?via=V      calls http://internal.plt.local/echo with V (fetch,
//                    get, request, client, undici6, undici7) and answers
//                    what the callee saw; own=1 sets traceparent and the
//                    request id header itself; detached=1 makes the call
//                    outside any request's context (from a timer set at
//                    start) and answers what the callee saw
//   /app?via=V       makes spans of its own with globalThis.platformatic's
//                    tracerProvider: an active span "load order" with
//                    attributes, events and links, a child "inner" of it, a mesh call with V
//                    and a log line inside it, an error status; a root span
//                    "detached root"; a span of no name and wrong times;
//                    answers the active span's context and whether
//                    @opentelemetry/api's global is set (it has no API),
//                    or "no tracerProvider"; heavy=1 also ends 40 spans
//                    "heavy" of 64 attributes and 70 events of 12 KB each
//   /external?via=V&url=U  calls U, a host that is not on the mesh, with V
//                    (fetch, get, https, array) and answers what came back
//   /ownreq          logs "own reqId" through a child logger bound to
//                    reqId "own-1"
//   /status?code=C   answers C
//   /health          answers ok (the tests skip it)
const http = require('node:http')
const path = require('node:path')

const log = globalThis.platformatic.logger
const child = log.child({ component: 'child' })
const OWN_PARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'

function undici (major) {
  return require(path.join(__dirname, '..', 'undici', 'node_modules', 'undici' + major))
}

function viaHttp (make, url, headers) {
  return new Promise((resolve, reject) => {
    const onResponse = (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c) => { body += c })
      res.on('end', () => resolve({ status: res.statusCode, body }))
    }
    const req = make(url, headers, onResponse)
    req.on('error', reject)
  })
}

async function call (via, url, headers) {
  switch (via) {
    case 'fetch': {
      const r = await fetch(url, { headers })
      return { status: r.status, body: await r.text() }
    }
    case 'get':
      return viaHttp((u, h, cb) => http.get(u, { headers: h }, cb), url, headers)
    case 'request':
      return viaHttp((u, h, cb) => {
        const p = new URL(u)
        const req = http.request({ host: p.hostname, path: p.pathname, headers: h }, cb)
        req.end()
        return req
      }, url, headers)
    case 'client':
      return viaHttp((u, h, cb) => {
        const req = new http.ClientRequest(u, { headers: h }, cb)
        req.end()
        return req
      }, url, headers)
    case 'undici6':
    case 'undici7': {
      const r = await undici(via.slice(6)).request(url, { headers })
      return { status: r.statusCode, body: await r.body.text() }
    }
  }
  throw new Error('unknown via ' + via)
}

// Jobs run from a timer set at start, so outside any request's context.
const detached = []
setInterval(() => {
  const job = detached.shift()
  if (job !== undefined) job()
}, 5).unref()

const server = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x')
  const q = u.searchParams
  const seen = () => ({ reqId: res.getHeader('x-request-id') })
  switch (u.pathname) {
    case '/ctx': {
      const tag = q.get('tag')
      log.info({ tag, step: 'sync' }, 'ctx line')
      req.on('data', () => {})
      req.on('end', () => log.info({ tag, step: 'body-end' }, 'ctx line'))
      setTimeout(async () => {
        child.info({ tag, step: 'timer' }, 'ctx line')
        await new Promise((resolve) => setTimeout(resolve, 1))
        log.info({ tag, step: 'await' }, 'ctx line')
        setImmediate(() => {
          log.info({ tag, step: 'immediate' }, 'ctx line')
          res.end(JSON.stringify(seen()))
        })
      }, Number(q.get('ms')) || 0)
      return
    }
    case '/call': {
      const headers = {}
      if (q.get('own') === '1') {
        headers.traceparent = OWN_PARENT
        headers['X-Request-Id'] = 'own-id'
      }
      const made = q.get('detached') === '1'
        ? new Promise((resolve) => detached.push(() => resolve(call(q.get('via'), 'http://internal.plt.local/echo?x=1', headers))))
        : call(q.get('via'), 'http://internal.plt.local/echo?x=1', headers)
      made.then((out) => {
        log.info({ via: q.get('via') }, 'called')
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify(out))
      }, (err) => {
        res.statusCode = 502
        res.end(String(err && err.stack))
      })
      return
    }
    case '/app': {
      const tp = globalThis.platformatic.tracerProvider
      if (tp === undefined) {
        res.end('no tracerProvider')
        return
      }
      const tracer = tp.getTracer('fixture', '1.0.0')
      const attributes = { 'order.id': 42, big: 'x'.repeat(5000), list: [1, 2], mixed: [1, 'a'], nan: NaN, skipped: { a: 1 } }
      tracer.startActiveSpan('load order', { attributes }, async (span) => {
        span.setAttribute('step', 'one')
        span.addEvent('cache miss', { key: 'order:42', bad: {} })
        span.addEvent('timed', new Date(1764672000000))
        span.recordException(new TypeError('bad order'))
        span.addLink({ context: { traceId: '5bf92f3577b34da6a3ce929d0e0e4736', spanId: '20f067aa0ba902b7' }, attributes: { why: 'batch' } })
        span.addLink({ context: { traceId: 'nope', spanId: '20f067aa0ba902b7' } })
        tracer.startSpan('inner', { kind: 2 }).end()
        const out = await call(q.get('via'), 'http://internal.plt.local/echo?x=1', {})
        log.info('in app span')
        span.setStatus({ code: 2, message: 'boom' })
        span.end()
        span.setAttribute('late', true) // after end: ignored
        tracer.startSpan('detached root', { root: true }).end()
        tracer.startSpan('', { startTime: 1e15, attributes: { n: 10n } }).end(-5) // what wattd would refuse
        if (q.get('heavy') === '1') {
          for (let i = 0; i < 40; i++) {
            const h = tracer.startSpan('heavy')
            for (let j = 0; j < 64; j++) h.setAttribute('k' + j, '\u20ac'.repeat(4000))
            for (let j = 0; j < 70; j++) h.addEvent('e' + j, { v: '\u20ac'.repeat(4000) })
            h.end()
          }
        }
        res.setHeader('content-type', 'application/json')
        await globalThis.platformatic.telemetryReady
        res.end(JSON.stringify({ out, span: span.spanContext(), recording: span.isRecording(), ready: typeof globalThis.platformatic.telemetryReady.then, otelApi: Symbol.for('opentelemetry.js.api.1') in globalThis }))
      })
      return
    }
    case '/external': {
      // A call to another host: via fetch, get (http.get), https
      // (https.get, accepting any certificate) or array (http.get with
      // its headers as an array); answers {status, body} or {error}.
      const url = q.get('url')
      let made
      switch (q.get('via')) {
        case 'fetch':
          made = fetch(url).then(async (r) => ({ status: r.status, body: await r.text() }))
          break
        case 'get':
          made = viaHttp((u, h, cb) => http.get(u, cb), url, {})
          break
        case 'https':
          made = viaHttp((u, h, cb) => require('node:https').get(u, { rejectUnauthorized: false }, cb), url, {})
          break
        case 'array':
          made = viaHttp((u, h, cb) => {
            const p = new URL(u)
            return http.get({ host: p.hostname, port: p.port, path: p.pathname, headers: ['Host', p.host, 'X-Array', '1'] }, cb)
          }, url, {})
          break
      }
      made.then((out) => res.end(JSON.stringify(out)), (err) => res.end(JSON.stringify({ error: err.code || err.message })))
      return
    }
    case '/ownreq':
      // A child logger with a reqId of its own, as Fastify's request
      // loggers have.
      log.child({ reqId: 'own-1' }).info('own reqId')
      res.end('ok')
      return
    case '/status':
      res.statusCode = Number(q.get('code'))
      res.end('status')
      return
    default:
      res.end('ok')
  }
})
server.listen(3000)
