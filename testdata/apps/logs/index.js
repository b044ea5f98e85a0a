// Writes the kinds of output wattd frames into log entries: a message of
// several lines, an error with its stack, pino records at trace and fatal,
// and a JSON object that is not a pino record. GET /again writes them again.
const http = require('node:http')
const os = require('node:os')

function pino (level, msg, extra) {
  const rec = { level, time: Date.now(), pid: process.pid, hostname: os.hostname(), msg, ...extra }
  process.stdout.write(JSON.stringify(rec) + '\n')
}

function writeAll () {
  console.log('multi-line message\nsecond line of it')
  console.error(new Error('boom'))
  pino(10, 'pino trace', { reqId: 'r1' })
  pino(60, 'pino fatal', { reqId: 'r2' })
  pino('fatal', 'pino string fatal')
  console.log(JSON.stringify({ event: 'sync', time: '2026-01-01T00:00:00Z', items: 3 }))
  console.log('single line')
}

http.createServer((req, res) => {
  if (req.url === '/again') writeAll()
  res.end('ok\n')
}).listen(3000, writeAll)
