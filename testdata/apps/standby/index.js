'use strict'
// The standby fixture: every response names the process that served it,
// and the listen callback says when (epoch ms) and as which worker it
// started to serve, so a test can tell when a standby was promoted and
// that it served nothing before.
const http = require('node:http')

console.log(`loaded pid=${process.pid}`)

const server = http.createServer((req, res) => {
  res.end(`pid=${process.pid}`)
})

server.listen(Number(process.env.PORT) || 0, () => {
  console.log(`listening pid=${process.pid} worker=${process.env.WATTD_WORKER_ID} at=${Date.now()}`)
})
