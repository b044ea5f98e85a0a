// The gateway: the one application with a public port. For GET / it asks
// the three internal applications for their part, all at the same time, and
// answers with the combined JSON.
//
// The internal applications have no TCP port at all. wattd gives each of
// their workers a Unix socket and routes http://<id>.plt.local to it, so the
// gateway reaches them with ordinary HTTP clients and plain URLs.
const http = require('node:http')

const TIMEOUT_MS = 2000

// users and catalog are called with the global fetch().
async function viaFetch (url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) })
  if (!res.ok) throw new Error(`${url} answered ${res.status}`)
  return res.json()
}

// orders is called with the classic http.get(), to show that older client
// code reaches the mesh just as well.
function viaHttpGet (url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: TIMEOUT_MS }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => { body += chunk })
      res.on('error', reject)
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`${url} answered ${res.statusCode}`))
        try {
          resolve(JSON.parse(body))
        } catch (err) {
          reject(err)
        }
      })
    })
    req.on('timeout', () => req.destroy(new Error(`${url} did not answer within ${TIMEOUT_MS} ms`)))
    req.on('error', reject)
  })
}

function send (res, status, value) {
  const body = JSON.stringify(value, null, 2) + '\n'
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

const server = http.createServer(async (req, res) => {
  const { pathname } = new URL(req.url, 'http://gateway.plt.local')
  if (req.method !== 'GET' || pathname !== '/') {
    return send(res, 404, { error: 'not found, try GET /' })
  }
  const started = performance.now()
  try {
    // The fan-out: three calls in flight at once, one per application.
    const [users, orders, catalog] = await Promise.all([
      viaFetch('http://users.plt.local/users'),
      viaHttpGet('http://orders.plt.local/orders'),
      viaFetch('http://catalog.plt.local/products')
    ])
    send(res, 200, {
      gateway: { pid: process.pid, worker: process.env.WATTD_WORKER_ID },
      tookMs: Math.round((performance.now() - started) * 100) / 100,
      users,
      orders,
      catalog
    })
  } catch (err) {
    // fetch() reports network failures as "fetch failed" with the reason in
    // err.cause; show both.
    const cause = err.cause ? `: ${err.cause.message || err.cause}` : ''
    send(res, 502, { error: `${err.message}${cause}` })
  }
})

// The port asked for here does not matter under wattd: it hands every
// gateway worker the shared public socket instead.
server.listen(process.env.PORT || 3000, () => {
  console.log(`gateway worker ${process.env.WATTD_WORKER_ID} listening`)
})
