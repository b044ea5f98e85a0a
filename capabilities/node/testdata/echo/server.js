'use strict'
// A raw TCP echo server: not HTTP at all.
const net = require('node:net')

const server = net.createServer((sock) => sock.pipe(sock))
server.listen(4000, () => {
  process.stdout.write(JSON.stringify({ event: 'listening', address: server.address() }) + '\n')
})
