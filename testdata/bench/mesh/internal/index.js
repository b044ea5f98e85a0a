'use strict'

// The internal app of the mesh benchmark: a small fixed JSON answer, as cheap
// as the hello fixture, so that the entry app's hop to it is what shows.
//
// Environment: PORT (under wattd redirected to this worker's mesh socket) and
// the optional BENCH_HOST, as in entry/index.js.

const http = require('node:http')

const body = Buffer.from(JSON.stringify({ ok: true, app: 'internal' }))
const headers = {
  'content-type': 'application/json',
  'content-length': body.length
}

const server = http.createServer((req, res) => {
  res.writeHead(200, headers)
  res.end(body)
})

const port = process.env.PORT || 3001
if (process.env.BENCH_HOST) {
  server.listen(port, process.env.BENCH_HOST)
} else {
  server.listen(port)
}

// A stop is SIGTERM (from wattd after it has drained the worker, or from the
// bench for the baseline): exit 0 at once, as the node:cluster baseline does,
// so that every target's stop reads the same.
process.on('SIGTERM', () => process.exit(0))
