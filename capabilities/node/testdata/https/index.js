'use strict'
// An https app; the test passes a throwaway certificate.
const fs = require('node:fs')
const https = require('node:https')

const server = https.createServer({
  cert: fs.readFileSync(process.env.FIXTURE_CERT),
  key: fs.readFileSync(process.env.FIXTURE_KEY)
}, (req, res) => {
  if (req.url === '/slow') {
    process.stdout.write(JSON.stringify({ event: 'slow-start' }) + '\n')
    setTimeout(() => res.end('slow done'), 300)
    return
  }
  res.setHeader('content-type', 'application/json')
  if (req.url === '/listeners') {
    // What runs for every request besides the app.
    res.end(JSON.stringify({ request: server.listenerCount('request') }))
    return
  }
  res.end(JSON.stringify({ app: 'https', url: req.url, encrypted: Boolean(req.socket.encrypted) }))
})
server.listen(8443, () => {
  process.stdout.write(JSON.stringify({ event: 'listening', address: server.address() }) + '\n')
})
