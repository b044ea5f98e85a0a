// The store application: the single I/O end of the funnel. One worker, so
// its in-memory state is the one and only copy; the compute workers reach it
// over the mesh at http://store.plt.local (it has no TCP port).
//
//   POST /results   record one result: {worker, pid, rounds, cpuMs, digest}
//   GET  /results   counts per compute worker and the latest results
//
// The state lives in memory and is gone when the store restarts: a real
// application would write to a database here.
const http = require('node:http')

const MAX_BODY = 16 * 1024
const KEEP_LATEST = 10

let total = 0
let totalRounds = 0
const byWorker = {} // compute worker id -> { results, rounds, cpuMs, pids }
const latest = []

function record (r) {
  total++
  totalRounds += r.rounds
  const w = (byWorker[r.worker] ??= { results: 0, rounds: 0, cpuMs: 0, pids: [] })
  w.results++
  w.rounds += r.rounds
  w.cpuMs = Math.round((w.cpuMs + r.cpuMs) * 100) / 100
  // A restarted worker keeps its id and gets a new pid.
  if (!w.pids.includes(r.pid)) w.pids.push(r.pid)
  latest.unshift({ ...r, at: new Date().toISOString() })
  latest.length = Math.min(latest.length, KEEP_LATEST)
  return { id: total, total }
}

function valid (r) {
  return r !== null && typeof r === 'object' &&
    typeof r.worker === 'string' && Number.isInteger(r.pid) &&
    Number.isInteger(r.rounds) && r.rounds > 0 &&
    typeof r.cpuMs === 'number' && typeof r.digest === 'string'
}

function send (res, status, value) {
  const body = JSON.stringify(value, null, 2) + '\n'
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

function readBody (req, done) {
  let body = ''
  let tooLarge = false
  req.setEncoding('utf8')
  req.on('data', (chunk) => {
    body += chunk
    if (body.length > MAX_BODY) tooLarge = true
  })
  req.on('end', () => done(tooLarge ? null : body))
}

const server = http.createServer((req, res) => {
  const { pathname } = new URL(req.url, 'http://store.plt.local')
  if (pathname !== '/results') return send(res, 404, { error: 'not found, try /results' })

  if (req.method === 'GET') {
    return send(res, 200, { total, totalRounds, byWorker, latest })
  }
  if (req.method === 'POST') {
    return readBody(req, (body) => {
      if (body === null) return send(res, 413, { error: `body over ${MAX_BODY} bytes` })
      let r
      try {
        r = JSON.parse(body)
      } catch {
        return send(res, 400, { error: 'body is not JSON' })
      }
      if (!valid(r)) return send(res, 400, { error: 'expected {worker, pid, rounds, cpuMs, digest}' })
      send(res, 201, record(r))
    })
  }
  res.setHeader('allow', 'GET, POST')
  send(res, 405, { error: 'method not allowed' })
})

server.listen(process.env.PORT || 3001, () => {
  console.log('store listening')
})
