// Takes a while to get ready, like a service that warms a cache or runs
// migrations before it listens.
const http = require('node:http')
const delay = Number(process.env.DB_DELAY_MS || 1500)
setTimeout(() => {
  http.createServer((req, res) => res.end('db ok')).listen(3000)
}, delay)
