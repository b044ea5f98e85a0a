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
//   INTERNAL_CLIENT how to call it: "fetch" (the default: global fetch) or
//                 "agent" (http.get through a keep-alive http.Agent, what
//                 axios, got and node-fetch do underneath).
//   BENCH_HOST    optional address to bind; only the TCP baseline sets it
//                 (to 127.0.0.1), as in the hello fixture.

const http = require('node:http')

const TARGET = process.env.INTERNAL_URL || 'http://internal.plt.local'

// Global fetch keeps its connections to the internal app alive, so a hop
// costs one request/response, not a connect as well.
async function viaFetch () {
  const r = await fetch(TARGET + '/')
  return { status: r.status, type: r.headers.get('content-type'), body: await r.text() }
}

// The same hop with http.get; without keepAlive the agent would open a
// connection per request.
const agent = new http.Agent({ keepAlive: true })
function viaAgent () {
  return new Promise((resolve, reject) => {
    http.get(TARGET + '/', { agent }, (r) => {
      let body = ''
      r.setEncoding('utf8')
      r.on('data', (chunk) => { body += chunk })
      r.on('end', () => resolve({ status: r.statusCode, type: r.headers['content-type'], body }))
      r.on('error', reject)
    }).on('error', reject)
  })
}

const call = process.env.INTERNAL_CLIENT === 'agent' ? viaAgent : viaFetch

const server = http.createServer(async (req, res) => {
  try {
    const r = await call()
    res.writeHead(r.status, {
      'content-type': r.type || 'application/json',
      'content-length': Buffer.byteLength(r.body)
    })
    res.end(r.body)
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
