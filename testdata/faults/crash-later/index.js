// Serves, then crashes CRASH_AFTER_MS (default 800) ms after it started listening.
const http = require('node:http')
const server = http.createServer((req, res) => res.end(`ok ${process.pid}\n`))
server.listen(3000, () => {
  setTimeout(() => {
    console.error('crashing on purpose')
    process.exit(7)
  }, Number(process.env.CRASH_AFTER_MS || 800))
})
