// Logs on request, for the tests of wattd's log handling: GET /?msg=M
// writes M at every level through globalThis.platformatic.logger (with
// values a redact configuration masks), a pino line of its own at debug,
// and a plain console line; it answers with its worker index.
const http = require('node:http')

const logger = globalThis.platformatic.logger

http.createServer((req, res) => {
  const msg = new URL(req.url, 'http://x').searchParams.get('msg') || 'hello'
  logger.debug({ secret: 's3' }, msg + ' debug')
  logger.info({ secret: 's3', user: { name: 'n', token: 't' } }, msg + ' info')
  logger.warn(msg + ' warn')
  process.stdout.write(JSON.stringify({ level: 20, time: Date.now(), msg: msg + ' own pino debug', secret: 'x' }) + '\n')
  console.log(msg + ' plain')
  res.end(String(globalThis.platformatic.workerId))
}).listen(3000)
