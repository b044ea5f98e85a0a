'use strict'

// The benchmark app: as small as an HTTP server gets, so that what the
// benchmark measures is the process model around it (wattd or node:cluster),
// not the app. The same file runs under both targets unchanged.
//
// Environment:
//   PORT          port to listen on. Under wattd the listen() call is
//                 redirected to a wattd-owned socket, so the value is moot.
//   BENCH_HOST    optional address to bind. Only the baselines set it (to
//                 127.0.0.1), so they stay on loopback; under wattd listen()
//                 keeps its plain one-argument form.
//   BENCH_REUSEPORT if set, listen with SO_REUSEPORT (Node >= 22.12): the
//                 reuseport baseline, N copies of this process sharing one
//                 port with nothing supervising them.
//   BENCH_EVENTS  optional file to which the process appends
//                 "listen <pid> <ms since the epoch>" once it listens and
//                 "exit <pid> <ms>" just before an EXIT_AFTER_MS exit; the
//                 bench pairs them to time each worker's replacement.
//   EXIT_AFTER_MS if set, exit(1) that many ms after listening: the crash
//                 scenario, a worker that dies on its own while serving.
//   EXIT_JITTER_PCT optional, 0-90: spread each worker's lifetime uniformly
//                 over EXIT_AFTER_MS +/- that percentage. Workers started
//                 together otherwise also die together, every time, which
//                 tests "all workers down at once" rather than "a worker
//                 died"; the bench runs both ways (flag -crash-jitter).
//   EXIT_EVERY_MS with EXIT_TICKS_DIR, instead of EXIT_AFTER_MS: one worker of
//                 the whole app exits at each multiple of EXIT_EVERY_MS on the
//                 wall clock, whichever first creates the tick's file in
//                 EXIT_TICKS_DIR (bench flag -crash-clock). The app then loses
//                 a worker at a fixed rate, however fast replacements come.

const fs = require('node:fs')
const http = require('node:http')

const body = Buffer.from('hello world')
const headers = {
  'content-type': 'text/plain',
  'content-length': body.length
}

const server = http.createServer((req, res) => {
  res.writeHead(200, headers)
  res.end(body)
})

const events = process.env.BENCH_EVENTS

// Each line is one write(2) on a descriptor opened with O_APPEND, so the
// lines of concurrent workers never interleave.
function note (what) {
  if (!events) return
  const now = performance.timeOrigin + performance.now()
  fs.appendFileSync(events, `${what} ${process.pid} ${now.toFixed(3)}\n`)
}

// Claims the next tick of the wall clock, over and over, until this process
// is the one that creates a tick's file: then it exits.
function exitOnTick (every, dir) {
  const tick = Math.floor(Date.now() / every) + 1
  setTimeout(() => {
    try {
      fs.closeSync(fs.openSync(`${dir}/tick-${tick}`, 'wx'))
    } catch (err) {
      if (err.code !== 'EEXIST') throw err
      exitOnTick(every, dir) // another worker took this one
      return
    }
    note('exit')
    process.exit(1)
  }, tick * every - Date.now())
}

function onListening () {
  note('listen')
  const every = Number(process.env.EXIT_EVERY_MS)
  if (every > 0 && process.env.EXIT_TICKS_DIR) {
    exitOnTick(every, process.env.EXIT_TICKS_DIR)
    return
  }
  let ms = Number(process.env.EXIT_AFTER_MS)
  const jitter = Math.min(90, Math.max(0, Number(process.env.EXIT_JITTER_PCT) || 0))
  ms *= 1 + (Math.random() * 2 - 1) * jitter / 100
  if (Number.isFinite(ms) && ms > 0) {
    setTimeout(() => {
      note('exit')
      process.exit(1)
    }, ms)
  }
}

const port = process.env.PORT || 3000
if (process.env.BENCH_REUSEPORT) {
  server.listen({ port: Number(port), host: process.env.BENCH_HOST || '127.0.0.1', reusePort: true }, onListening)
  // Stopped by the bench itself: exit 0, as the node:cluster primary does,
  // so that every target's stop reads the same.
  process.on('SIGTERM', () => process.exit(0))
} else if (process.env.BENCH_HOST) {
  server.listen(port, process.env.BENCH_HOST, onListening)
} else {
  server.listen(port, onListening)
}
