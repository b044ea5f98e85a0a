// A node:http app for the integration tests: / answers at once, /slow after
// ?ms= milliseconds (in-flight work for graceful-stop tests), /spin after
// keeping the event loop busy for ?ms=, /exit exits.
// An upgrade (any path) switches to a protocol that echoes what it is sent,
// and a CONNECT opens a tunnel that does the same.
// Every answer names the peer address the request came from.
// HEAP_OBJECTS=N keeps N small objects alive, for a heap that takes V8 a
// while to write as a snapshot.
const http = require('node:http')

globalThis.ballast = Array.from({ length: Number(process.env.HEAP_OBJECTS || 0) }, (_, i) => ({ i, s: 'object ' + i }))

// spinForProfile keeps the event loop busy for ms: /spin?ms=N, a function
// a CPU profile of the worker shows by its name.
function spinForProfile (ms) {
  const until = Date.now() + ms
  let x = 0
  while (Date.now() < until) x += Math.sqrt(x + 1)
  return x
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x')
  if (url.pathname === '/spin') spinForProfile(Number(url.searchParams.get('ms') || 10))
  const reply = () => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ app: process.env.WATTD_APP_ID, worker: process.env.WATTD_WORKER_ID, pid: process.pid, path: url.pathname, peer: req.socket.remoteAddress }))
  }
  if (url.pathname === '/slow') return setTimeout(reply, Number(url.searchParams.get('ms') || 1000))
  if (req.method === 'POST') {
    let body = ''
    req.on('data', (c) => { body += c })
    req.on('end', () => res.end(JSON.stringify({ app: process.env.WATTD_APP_ID, pid: process.pid, received: body })))
    return
  }
  if (url.pathname === '/exit') {
    reply()
    return setTimeout(() => process.exit(Number(url.searchParams.get('code') || 1)), 10)
  }
  reply()
})
server.on('upgrade', (req, sock) => {
  sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n')
  sock.pipe(sock)
})
// A CONNECT opens a tunnel that echoes too.
server.on('connect', (req, sock) => {
  sock.write('HTTP/1.1 200 Connection Established\r\n\r\n')
  sock.pipe(sock)
})
server.listen(3000)
