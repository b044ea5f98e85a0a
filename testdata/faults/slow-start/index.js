// Takes SLOW_START_MS (default 1500) ms of start-up work before it listens.
const http = require('node:http')
setTimeout(() => {
  http.createServer((req, res) => res.end(`slow ${process.pid}\n`)).listen(3000)
}, Number(process.env.SLOW_START_MS || 1500))
