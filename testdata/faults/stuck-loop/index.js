// Serves its pid. GET /stick answers, then blocks the event loop for good:
// the process stays alive but serves nothing and reports nothing, which
// only a health check can notice. STICK_AFTER_MS, when set, does the same
// that long after listening, without a request. GET /health answers with
// HEALTH_STATUS (200 by default), for the health probe.
const http = require('node:http')

function stick () {
  // Let the answer to /stick leave first.
  setTimeout(() => { for (;;) {} }, 20)
}

const server = http.createServer((req, res) => {
  if (req.url === '/stick') {
    res.setHeader('connection', 'close')
    res.end(`sticking ${process.pid}\n`)
    stick()
    return
  }
  if (req.url === '/health') {
    res.statusCode = Number(process.env.HEALTH_STATUS || 200)
  }
  res.end(`ok ${process.pid}\n`)
})

server.listen(3000, () => {
  const after = Number(process.env.STICK_AFTER_MS || 0)
  if (after > 0) setTimeout(stick, after)
})
