// A worker that speaks the control protocol by hand, without the Node
// preload, to show how wattd treats a worker that breaks it. Run it with the
// command capability and "listenFds": true; it serves every socket it is
// given with a one-line answer.
//
// FAULT chooses what it does wrong:
//   oversize    a frame header announcing 2 MiB
//   malformed   a frame whose payload is not JSON
//   typeless    a JSON object without "type"
//   cut         the first bytes of a frame, then it closes its end and
//               keeps running
//   nohello     "ready" as its first frame, no hello
//   badversion  hello offering only protocol version 99
//   hangup      closes its end of the channel between two frames after
//               ready, and keeps serving (not a fault)
//   silent      never touches the channel (a program that does not speak
//               the protocol)
//   none        nothing: hello, ready, drained on drain
// The first four happen after the handshake: FAULT_AT=start before the
// worker listens (it would never be ready), FAULT_AT=ready (the default)
// after it reported ready.
// FAULT_ONCE names a file: the fault happens only while the file does not
// exist, and the worker creates it, so its replacement behaves.
'use strict'
const fs = require('node:fs')
const http = require('node:http')
const net = require('node:net')

const env = process.env
let fault = env.FAULT || 'none'
if (env.FAULT_ONCE) {
  if (fs.existsSync(env.FAULT_ONCE)) fault = 'none'
  else fs.writeFileSync(env.FAULT_ONCE, String(process.pid))
}
const at = env.FAULT_AT || 'ready'

function frame (payload) {
  const body = Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload))
  const f = Buffer.alloc(4 + body.length)
  f.writeUInt32BE(body.length, 0)
  body.copy(f, 4)
  return f
}

function badFrame () {
  switch (fault) {
    case 'oversize': {
      const f = Buffer.alloc(20)
      f.writeUInt32BE(2 << 20, 0)
      return f
    }
    case 'malformed':
      return frame('{"type":"stats", oops')
    case 'typeless':
      return frame({ stats: { elu: 0.5 } })
    case 'cut':
      return frame({ type: 'stats', stats: { elu: 0.5 } }).subarray(0, 10)
  }
  return null
}

const servers = []
function listen (onListening) {
  const names = (env.LISTEN_FDNAMES || '').split(':').filter(Boolean)
  let left = names.length
  names.forEach((name, i) => {
    const srv = http.createServer((req, res) => res.end(`bad-frame ${fault} ${process.pid}\n`))
    servers.push(srv)
    srv.listen({ fd: 3 + i }, () => { if (--left === 0 && onListening) onListening() })
  })
}

process.on('SIGTERM', () => process.exit(0))

if (fault === 'silent') {
  listen()
  setInterval(() => {}, 60000)
} else {
  const sock = new net.Socket({ fd: Number(env.WATTD_CONTROL_FD), readable: true, writable: true })
  sock.on('error', () => {})
  let welcomed = false
  let buf = Buffer.alloc(0)
  sock.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk])
    while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
      const msg = JSON.parse(buf.subarray(4, 4 + buf.readUInt32BE(0)).toString())
      buf = buf.subarray(4 + buf.readUInt32BE(0))
      onMessage(msg)
    }
  })

  const misbehave = () => {
    const bad = badFrame()
    if (fault === 'cut') sock.end(bad)
    else sock.write(bad)
  }

  const onMessage = (msg) => {
    if (msg.type === 'welcome' && !welcomed) {
      welcomed = true
      if (badFrame() && at === 'start') {
        misbehave()
        setTimeout(listen, 600000) // it would be ready much later
        return
      }
      listen(() => {
        sock.write(frame({ type: 'ready', listeners: (env.LISTEN_FDNAMES || '').split(':') }))
        if (badFrame()) setTimeout(misbehave, 300)
        else if (fault === 'hangup') setTimeout(() => sock.end(), 300)
      })
    } else if (msg.type === 'drain') {
      for (const s of servers) s.close()
      sock.write(frame({ type: 'drained' }))
    }
  }

  if (fault === 'nohello') {
    sock.write(frame({ type: 'ready' }))
    listen()
  } else if (fault === 'badversion') {
    sock.write(frame({ type: 'hello', versions: [99], pid: process.pid }))
    listen()
  } else {
    sock.write(frame({ type: 'hello', versions: [1], pid: process.pid, runtime: 'node ' + process.version }))
  }
  setInterval(() => {}, 60000)
}
