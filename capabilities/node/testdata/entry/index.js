'use strict'
// A plain node:http app, written as if wattd did not exist.
const http = require('node:http')

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
out({ event: 'env', vars: Object.keys(process.env).filter((k) => /^(LISTEN_|WATTD_)/.test(k)).sort() })

function handler (req, res) {
  if (req.url === '/slow') {
    out({ event: 'slow-start' })
    setTimeout(() => res.end('slow done'), 300)
    return
  }
  if (req.url === '/stream') {
    // Headers (keep-alive) go out at once, the body ends 300 ms later.
    out({ event: 'stream-start' })
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.write('part1 ')
    setTimeout(() => res.end('part2'), 300)
    return
  }
  if (req.url.startsWith('/keepalive/')) {
    // The app's own "Connection: keep-alive", as a proxy copying its
    // upstream's headers sets it: by setHeader, writeHead with an object
    // or with raw pairs, after 300 ms ("slow") or at once.
    const how = req.url.slice('/keepalive/'.length)
    const send = () => {
      if (how.endsWith('head')) res.writeHead(200, { Connection: 'keep-alive', 'content-type': 'text/plain' })
      else if (how.endsWith('raw')) res.writeHead(200, ['connection', 'keep-alive', 'content-type', 'text/plain'])
      else res.setHeader('Connection', 'keep-alive')
      res.end('kept ' + how)
    }
    if (how.startsWith('slow')) {
      out({ event: 'slow-start' })
      setTimeout(send, 300)
    } else send()
    return
  }
  if (req.url === '/listeners') {
    // What runs for every request besides the app: listeners on the
    // server's 'request' and on this response.
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({
      request: server.listenerCount('request'),
      close: res.listenerCount('close'),
      finish: res.listenerCount('finish')
    }))
    return
  }
  if (req.url === '/sizes') {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ bufferPoolSize: Buffer.poolSize, highWaterMark: require('node:stream').getDefaultHighWaterMark(false) }))
    return
  }
  if (req.url.startsWith('/block/')) {
    // Hold the event loop for the number of ms in the path.
    const until = Date.now() + Number(req.url.slice('/block/'.length))
    while (Date.now() < until);
    res.end('blocked')
    return
  }
  if (req.url.startsWith('/exit/')) {
    // A crash: process.exit with the code in the path, or an exception
    // nothing catches.
    const code = req.url.slice('/exit/'.length)
    if (code === 'throw') setImmediate(() => { throw new Error('boom') })
    else process.exit(Number(code))
    return
  }
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ app: 'entry', pid: process.pid, url: req.url }))
}

const server = http.createServer(handler)
// ENTRY_BACKLOG: the backlog the app asks for (a test of the preload's).
const backlog = process.env.ENTRY_BACKLOG === undefined ? undefined : Number(process.env.ENTRY_BACKLOG)
server.listen({ port: 3000, host: '127.0.0.1', backlog }, () => {
  out({ event: 'listening', address: server.address() })

  // What Fastify does for host "localhost": bind the same handler again on
  // another address (::1 there; 127.0.0.2 here, which needs no IPv6 and
  // would bind fine) with the port the first server got.
  http.createServer(handler)
    .on('error', (err) => out({ event: 'dup', code: err.code }))
    .listen({ host: '127.0.0.2', port: server.address().port }, () => out({ event: 'dup', code: 'none' }))

  // An unrelated second server must be left alone.
  other.listen(0, '127.0.0.1', () => out({ event: 'other', address: other.address() }))
})
// Unref'd, so that after a drain nothing of the app's keeps the process up.
const other = http.createServer((req, res) => res.end('other')).unref()

// The usual graceful stop: close the servers and let the process end once
// nothing is left, without process.exit().
process.on('SIGTERM', () => {
  server.close((err) => out({ event: 'closed', err: err ? err.code : null }))
  other.close()
})
