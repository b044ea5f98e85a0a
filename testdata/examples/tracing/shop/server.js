'use strict'
// GET /order/:id looks the order's item up in the stock application, inside
// a span of its own made with the tracer provider Watt (and wattd) give an
// application while telemetry is on.
const http = require('node:http')

const tracer = globalThis.platformatic.tracerProvider.getTracer('shop', '1.0.0')
const log = globalThis.platformatic.logger

http.createServer((req, res) => {
  const m = /^\/order\/(\w+)$/.exec(req.url)
  if (m === null) {
    res.statusCode = 404
    res.end('try /order/42\n')
    return
  }
  tracer.startActiveSpan('load order', { attributes: { 'order.id': m[1] } }, async (span) => {
    try {
      // A mesh call inside the span: its client span is the span's child,
      // and the log line carries the span's id.
      const stock = await (await fetch('http://stock.plt.local/items/' + m[1])).json()
      span.addEvent('stock checked', { 'stock.available': stock.available })
      log.info({ order: m[1] }, 'order loaded')
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ order: m[1], stock }))
    } catch (err) {
      span.recordException(err)
      span.setStatus({ code: 2, message: err.message })
      res.statusCode = 502
      res.end('stock unavailable\n')
    } finally {
      span.end()
    }
  })
}).listen(3000)
