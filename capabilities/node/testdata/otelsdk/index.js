'use strict'
// An app for otelapi_test.go that sets up OpenTelemetry's SDK itself
// (NodeTracerProvider.register(), an in-memory exporter), as an app that
// brings its own tracing does. Route /sdk makes an active span with the
// SDK's tracer, calls http://internal.plt.local/echo inside it and
// answers the request's active span, the SDK span, what the callee saw,
// what inject wrote inside the span and the spans the SDK exported.
// Route /suppressed?url=U fetches U with tracing suppressed.
const http = require('node:http')
const api = require('@opentelemetry/api')
const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node')
const { SimpleSpanProcessor, InMemorySpanExporter } = require('@opentelemetry/sdk-trace-base')
const { suppressTracing } = require('@opentelemetry/core')

const exporter = new InMemorySpanExporter()
new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }).register()

function ids (span) {
  if (!span) return null
  const sc = span.spanContext()
  return { traceId: sc.traceId, spanId: sc.spanId }
}

http.createServer(async (req, res) => {
  try {
    if (req.url.startsWith('/suppressed?')) {
      // A call made with tracing suppressed, as the SDK's exporters make
      // theirs: it answers what the other host saw.
      const url = new URL(req.url, 'http://x').searchParams.get('url')
      const r = await api.context.with(suppressTracing(api.context.active()), () => fetch(url))
      res.end(await r.text())
      return
    }
    const out = { active: ids(api.trace.getActiveSpan()) }
    await api.trace.getTracer('own-sdk').startActiveSpan('sdk work', async (span) => {
      out.sdk = ids(span)
      const r = await fetch('http://internal.plt.local/echo')
      out.echo = JSON.parse(await r.text())
      const h = {}
      api.propagation.inject(api.context.active(), h)
      out.injected = h
      span.end()
    })
    out.exported = exporter.getFinishedSpans().map((s) => ({
      name: s.name, spanId: s.spanContext().spanId, parentSpanId: (s.parentSpanContext || {}).spanId || s.parentSpanId || ''
    }))
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify(out))
  } catch (err) {
    res.statusCode = 500
    res.end(String(err && err.stack))
  }
}).listen(3000)
