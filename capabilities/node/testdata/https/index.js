'use strict'
// An https app; the test passes a throwaway certificate. With FIXTURE_H2
// set it serves HTTP/2 over TLS, and HTTP/1.1 to clients that ask for it.
const fs = require('node:fs')
const https = require('node:https')
const http2 = require('node:http2')

const tls = {
  cert: fs.readFileSync(process.env.FIXTURE_CERT),
  key: fs.readFileSync(process.env.FIXTURE_KEY)
}
const server = process.env.FIXTURE_H2
  ? http2.createSecureServer({ ...tls, allowHTTP1: true }, handle)
  : https.createServer(tls, handle)

function handle (req, res) {
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
  res.end(JSON.stringify({ app: 'https', url: req.url, encrypted: Boolean(req.socket.encrypted), httpVersion: req.httpVersion }))
}

server.listen(8443, () => {
  process.stdout.write(JSON.stringify({ event: 'listening', address: server.address() }) + '\n')
})
