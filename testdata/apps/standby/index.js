'use strict'
// The standby fixture: every response names the process that served it,
// and the listen callback says when (epoch ms) and as which worker it
// started to serve, so a test can tell when a standby was promoted and
// that it served nothing before. With LISTEN_GATE set, a standby that
// finds that file there at its start calls listen() only once the file is
// gone: a test holds a standby in its start that way.
const fs = require('node:fs')
const http = require('node:http')

// With CRASH_LOAD naming a file that exists, a standby throws as it loads
// the app: standbys that never become able to take a slot.
if (process.env.CRASH_LOAD && process.env.WATTD_WORKER_ID === '-1' && fs.existsSync(process.env.CRASH_LOAD)) {
  throw new Error('standby fixture: CRASH_LOAD')
}

// With LIE_READY set, a standby says "ready" on its control channel as it
// loads, before it is promoted: a worker that lies on its control channel.
// With LIE_READY=serving, every worker says it is ready and serves its
// sockets, and never listens.
const lieServing = process.env.LIE_READY === 'serving'
if ((process.env.LIE_READY && process.env.WATTD_WORKER_ID === '-1') || lieServing) {
  const body = Buffer.from(lieServing ? '{"type":"ready","listeners":["http","mesh"]}' : '{"type":"ready"}')
  const frame = Buffer.alloc(4 + body.length)
  frame.writeUInt32BE(body.length, 0)
  body.copy(frame, 4)
  // The preload takes the descriptor's number out of process.env; the
  // process's environment at exec still has it.
  const env = fs.readFileSync('/proc/self/environ', 'utf8').split('\0')
  const fd = env.find((e) => e.startsWith('WATTD_CONTROL_FD=')).split('=')[1]
  fs.writeSync(Number(fd), frame)
}

console.log(`loaded pid=${process.pid}`)

const server = http.createServer((req, res) => {
  if (req.url === '/close-server') {
    // The app stops serving but keeps running: its server closes (so the
    // process no longer accepts on the socket wattd handed it) and a timer
    // keeps the event loop, and the stats reports, going.
    res.setHeader('connection', 'close')
    res.end(`closing pid=${process.pid}`)
    server.close()
    server.closeIdleConnections()
    setInterval(() => {}, 1000)
    return
  }
  if (req.url === '/busy') {
    // A handler that holds the event loop for 600 ms: a slow worker that
    // still takes one connection per turn of its loop.
    const until = Date.now() + 600
    while (Date.now() < until);
    res.end(`busy pid=${process.pid}`)
    return
  }
  if (req.url === '/exit-slowly') {
    // A crash whose end takes a while after its last JavaScript: the
    // process lingers 1.5 s in an exit listener of the app's, as a large
    // heap lingers in the kernel's teardown.
    process.on('exit', () => {
      const until = Date.now() + 1500
      while (Date.now() < until);
    })
    process.exit(3)
  }
  res.end(`pid=${process.pid}`)
})

// With HANG_PROMOTED set, a standby stops its event loop for good as it
// starts to listen once promoted, before wattd's preload can say ready: a
// promoted standby that never takes its slot.
if (process.env.HANG_PROMOTED && process.env.WATTD_WORKER_ID === '-1') {
  server.once('listening', () => {
    console.log(`hanging pid=${process.pid}`)
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0)
  })
}

function listen () {
  server.listen(Number(process.env.PORT) || 0, () => {
    console.log(`listening pid=${process.pid} worker=${process.env.WATTD_WORKER_ID} at=${Date.now()}`)
    // With EXIT_ON_LISTEN naming a file that exists, every process exits
    // as it starts to serve: an app in a crash loop.
    if (process.env.EXIT_ON_LISTEN && fs.existsSync(process.env.EXIT_ON_LISTEN)) process.exit(1)
  })
  // As many apps do, the address right after listen(), before the
  // callback: a standby's listen() is held, and its address still answers.
  console.log(`address pid=${process.pid} port=${server.address().port}`)
}

globalThis.platformatic?.events?.on('promoted', ({ workerId }) => {
  console.log(`promoted pid=${process.pid} workerId=${workerId} global=${globalThis.platformatic.workerId}`)
})

const gate = process.env.LISTEN_GATE
if (lieServing) {
  setInterval(() => {}, 1000) // alive, reporting stats, taking nothing
} else if (gate && process.env.WATTD_WORKER_ID === '-1' && fs.existsSync(gate)) {
  console.log(`gated pid=${process.pid}`)
  const t = setInterval(() => {
    if (!fs.existsSync(gate)) {
      clearInterval(t)
      listen()
    }
  }, 20)
} else {
  listen()
}
