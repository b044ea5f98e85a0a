'use strict'

// The benchmark app: as small as an HTTP server gets, so that what the
// benchmark measures is the process model around it (wattd or node:cluster),
// not the app. The same file runs under both targets unchanged.
//
// Environment:
//   PORT          port to listen on. Under wattd the listen() call is
//                 redirected to a wattd-owned socket, so the value is moot.
//   BENCH_HOST    optional address to bind. Only the node:cluster baseline
//                 sets it (to 127.0.0.1), so the baseline stays on loopback;
//                 under wattd listen() keeps its plain one-argument form.
//   EXIT_AFTER_MS if set, exit(1) that many ms after listening: the crash
//                 scenario, a worker that dies on its own while serving.
//   EXIT_JITTER_PCT optional, 0-90: spread each worker's lifetime uniformly
//                 over EXIT_AFTER_MS +/- that percentage. Workers started
//                 together otherwise also die together, every time, which
//                 tests "all workers down at once" rather than "a worker
//                 died"; the bench runs both ways (flag -crash-jitter).

const http = require('node:http')

const body = Buffer.from('hello world')
const headers = {
  'content-type': 'text/plain',
  'content-length': body.length
}

const server = http.createServer((req, res) => {
  res.writeHead(200, headers)
  res.end(body)
})

function onListening () {
  let ms = Number(process.env.EXIT_AFTER_MS)
  const jitter = Math.min(90, Math.max(0, Number(process.env.EXIT_JITTER_PCT) || 0))
  ms *= 1 + (Math.random() * 2 - 1) * jitter / 100
  if (Number.isFinite(ms) && ms > 0) {
    setTimeout(() => process.exit(1), ms)
  }
}

const port = process.env.PORT || 3000
if (process.env.BENCH_HOST) {
  server.listen(port, process.env.BENCH_HOST, onListening)
} else {
  server.listen(port, onListening)
}
