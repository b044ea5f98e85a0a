'use strict'

// The public app of the mesh benchmark: every request it gets is answered by
// calling the internal app once and passing its answer on. What the bench
// measures is therefore the cost of one app-to-app hop, compared between
// wattd's mesh (a Unix socket per worker, reached as internal.plt.local) and
// plain TCP on loopback. The same file runs under both targets unchanged.
//
// Environment:
//   PORT          port to listen on. Under wattd the listen() call is
//                 redirected to a wattd-owned socket, so the value is moot.
//   INTERNAL_URL  where the internal app is. Unset under wattd, which routes
//                 http://internal.plt.local itself; the TCP baseline sets it
//                 to http://127.0.0.1:<port of the internal app>.
//   BENCH_HOST    optional address to bind; only the TCP baseline sets it
//                 (to 127.0.0.1), as in the hello fixture.

const http = require('node:http')

const TARGET = process.env.INTERNAL_URL || 'http://internal.plt.local'

const server = http.createServer(async (req, res) => {
  try {
    // Global fetch keeps its connections to the internal app alive, so a
    // hop costs one request/response, not a connect as well.
    const r = await fetch(TARGET + '/')
    const body = await r.text()
    res.writeHead(r.status, {
      'content-type': r.headers.get('content-type') || 'application/json',
      'content-length': Buffer.byteLength(body)
    })
    res.end(body)
  } catch (err) {
    // A failed hop is a 502, which the load generator counts as a failure.
    const body = JSON.stringify({ error: 'internal app unreachable', detail: String(err && (err.cause || err.message || err)) })
    res.writeHead(502, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  }
})

const port = process.env.PORT || 3000
if (process.env.BENCH_HOST) {
  server.listen(port, process.env.BENCH_HOST)
} else {
  server.listen(port)
}

// A stop is SIGTERM (from wattd after it has drained the worker, or from the
// bench for the baseline): exit 0 at once, as the node:cluster baseline does,
// so that every target's stop reads the same.
process.on('SIGTERM', () => process.exit(0))
