// The compute application: the public, CPU-bound part. wattd runs 4 copies
// of it, each in its own process with its own socket on the public port
// (SO_REUSEPORT), and the kernel spreads incoming connections over them, so
// four requests can hash on four cores at once.
//
//   GET /?rounds=N   hash a 16 KiB buffer N times (default 1000, at most
//                    100000), record the result in the store, answer it
//   GET /results     what the store has recorded so far
//
// Every result goes to the one store application over the mesh, with a
// fetch() POST to http://store.plt.local/results: many CPU workers, one
// place that holds the state.
const crypto = require('node:crypto')
const http = require('node:http')

const DEFAULT_ROUNDS = 1000 // about 10 ms of CPU on a current machine
const MAX_ROUNDS = 100000 // keep one request from holding a core for long
const STORE = 'http://store.plt.local'
const TIMEOUT_MS = 2000
const worker = process.env.WATTD_WORKER_ID ?? '-'
const block = Buffer.alloc(16 * 1024, 'funnel')

// The CPU work: a chain of SHA-256 digests, each over the previous digest
// and the block. It blocks this worker's event loop while it runs, which is
// why the work is spread over several worker processes.
function work (rounds) {
  let digest = Buffer.alloc(32)
  for (let i = 0; i < rounds; i++) {
    digest = crypto.createHash('sha256').update(digest).update(block).digest()
  }
  return digest.toString('hex')
}

function parseRounds (value) {
  if (value === null || value === '') return DEFAULT_ROUNDS
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1 || n > MAX_ROUNDS) return null
  return n
}

function send (res, status, value) {
  const body = JSON.stringify(value, null, 2) + '\n'
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

// storeCall makes one request to the store and returns its JSON answer.
async function storeCall (path, init = {}) {
  const res = await fetch(STORE + path, { ...init, signal: AbortSignal.timeout(TIMEOUT_MS) })
  if (!res.ok) throw new Error(`store answered ${res.status} to ${path}`)
  return res.json()
}

async function handle (req, res) {
  const url = new URL(req.url, 'http://compute.plt.local')
  if (req.method === 'GET' && url.pathname === '/results') {
    return send(res, 200, await storeCall('/results'))
  }
  if (req.method !== 'GET' || url.pathname !== '/') {
    return send(res, 404, { error: 'not found, try GET /?rounds=1000 or GET /results' })
  }
  const rounds = parseRounds(url.searchParams.get('rounds'))
  if (rounds === null) {
    return send(res, 400, { error: `rounds must be an integer from 1 to ${MAX_ROUNDS}` })
  }

  const started = performance.now()
  const digest = work(rounds)
  const cpuMs = Math.round((performance.now() - started) * 100) / 100

  const result = { worker, pid: process.pid, rounds, cpuMs, digest }
  const recorded = await storeCall('/results', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(result)
  })
  send(res, 200, { ...result, recorded })
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    // fetch() reports network failures as "fetch failed" with the reason in
    // err.cause; show both.
    const cause = err.cause ? `: ${err.cause.message || err.cause}` : ''
    send(res, 502, { error: `${err.message}${cause}` })
  })
})

// Under wattd the port does not matter: each worker is handed its own
// socket on the shared public port instead.
server.listen(process.env.PORT || 3000, () => {
  console.log(`compute worker ${worker} listening`)
})
