'use strict'
// A non-entrypoint app that asks for any free TCP port.
const http = require('node:http')

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')

function handler (req, res) {
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ app: 'service', url: req.url }))
}

const server = http.createServer(handler)
server.listen(0, () => {
  out({ event: 'listening', address: server.address() })
  // Fastify with host "localhost" and a Unix-socket primary asks for the
  // same handler on 127.0.0.1 with an undefined port: a random TCP port.
  http.createServer(handler)
    .on('error', (err) => out({ event: 'dup', code: err.code }))
    .listen({ host: '127.0.0.1', port: undefined }, () => out({ event: 'dup', code: 'none' }))
})
