'use strict'
// An app for otelapi_test.go: it uses @opentelemetry/api as an app that
// was written for Watt does, with no SDK of its own. Routes:
//   /api     adds to the request's span through trace.getActiveSpan()
//            (an attribute, an event, an exception, a link), injects the
//            active context into headers, starts a span through the
//            API's global tracer (a no-op: no provider is registered),
//            makes an application span active and, inside it, reads the
//            active span, calls http://internal.plt.local/echo through
//            context.with (the call is the span's child) and writes a log
//            line; starts a span under an extracted traceparent, calls the
//            echo app under it too, and a span under ROOT_CONTEXT (a root);
//            answers what it saw
//   /rename  renames the request's span and sets an OK status on a 500
//   /plain   answers ok, touching nothing
const http = require('node:http')
const api = require('@opentelemetry/api')

const log = globalThis.platformatic.logger
const REMOTE = '00-5bf92f3577b34da6a3ce929d0e0e4736-20f067aa0ba902b7-01'

function ids (span) {
  if (!span) return null
  const sc = span.spanContext()
  return { traceId: sc.traceId, spanId: sc.spanId, traceFlags: sc.traceFlags }
}

async function echo () {
  const r = await fetch('http://internal.plt.local/echo')
  return JSON.parse(await r.text())
}

const server = http.createServer(async (req, res) => {
  const path = req.url.split('?')[0]
  try {
    if (path === '/plain') {
      res.end('ok')
      return
    }
    const active = api.trace.getActiveSpan()
    if (path === '/rename') {
      active.updateName('custom name')
      active.setStatus({ code: api.SpanStatusCode.OK })
      res.statusCode = 500
      res.end('renamed')
      return
    }
    const out = { active: ids(active), recording: active ? active.isRecording() : null }
    active.setAttribute('user.id', 'u1')
    active.setAttributes({ 'user.role': 'admin', 'wattd.none': undefined })
    active.addEvent('checked', { ok: true })
    active.recordException(new RangeError('late'))
    active.addLink({ context: api.trace.getSpanContext(api.propagation.extract(api.ROOT_CONTEXT, { traceparent: REMOTE })) })
    active.end() // ends with the response, not here
    const headers = {}
    api.propagation.inject(api.context.active(), headers)
    out.injected = headers
    const noop = api.trace.getTracer('global').startSpan('via global')
    out.global = ids(noop)
    out.globalRecording = noop.isRecording()
    noop.end()

    const tracer = globalThis.platformatic.tracerProvider.getTracer('otelapi', '1.0.0')
    await tracer.startActiveSpan('app work', async (span) => {
      out.app = ids(span)
      out.activeInside = ids(api.trace.getActiveSpan())
      // A context of the API holding the span, entered through the API.
      const ctx = api.trace.setSpan(api.ROOT_CONTEXT, span)
      await api.context.with(ctx, async () => {
        const h = {}
        api.propagation.inject(api.context.active(), h)
        out.injectedWith = h
        out.echoWith = await echo()
        log.info('with app span')
      })
      span.end()
    })
    const remote = api.propagation.extract(api.ROOT_CONTEXT, { traceparent: REMOTE, tracestate: 'vendor=1' })
    const child = tracer.startSpan('remote child', {}, remote)
    out.remoteChild = ids(child)
    child.end()
    await api.context.with(remote, async () => {
      out.echoRemote = await echo()
      const h = {}
      api.propagation.inject(api.context.active(), h)
      out.injectedRemote = h
    })
    const root = tracer.startSpan('explicit root', {}, api.ROOT_CONTEXT)
    out.root = ids(root)
    root.end()
    out.bound = api.context.bind(api.context.active(), () => ids(api.trace.getActiveSpan()))()
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify(out))
  } catch (err) {
    res.statusCode = 500
    res.end(String(err && err.stack))
  }
})
server.listen(3000)
