// Warm-up of a standby's HTTP path.
//
// A standby is promoted into a slot whose connections arrive all at once:
// the dead worker's clients reconnect together and the slot's accept queue
// already holds some. A process that has never served a request answers
// its first ones slowly: Node.js's HTTP server code (the parser's
// callbacks, IncomingMessage, ServerResponse, the socket's writes) is
// compiled lazily and runs in V8's interpreter until it has run often
// enough to be optimised. Measured with the bench's promote scenario (the
// hello app, 25 connections opened as the worker is killed), the first
// request of a connection took p90 105 ms on a cold standby and 19 ms on a
// warm one.
//
// So while it waits, a standby serves a couple of thousand requests to
// itself on a private loopback server of its own, with a handler of ours,
// never the app's: the code that is warmed is Node.js's, which the app's
// servers share. Nothing of it is seen outside the process: the server is
// not one wattd manages (no metrics, traces or request hooks of the preload
// see it), it is closed when done or when the standby is promoted, and the
// warm-up is skipped when something else watches every HTTP server of the
// process (an APM agent that wraps http.Server's emit or subscribes to
// Node.js's http.server diagnostics channels), which would count these
// requests as the app's, or when the app's environment has
// WATTD_STANDBY_WARMUP=0.
'use strict'

const { warn } = require('./base.cjs')

// A standby is started right after a promotion, that is right after a
// crash, when the promoted worker serves the dead one's clients as they
// reconnect: warming up then would take the CPU from them. So it warms up
// once the machine has a CPU to spare (IDLE_CPUS of the CPUs it may run on
// idle over the last IDLE_EVERY_MS, read from /proc/stat), looking from
// IDLE_FIRST_MS after it is loaded, and at WARM_AFTER_MS whatever the
// machine does (where /proc/stat cannot be read, at WARM_AFTER_MS). On a
// busy machine it so waits as long as before; in a storm of crashes it is
// promoted first and does not warm up at all.
const IDLE_FIRST_MS = 100
const IDLE_EVERY_MS = 100
const IDLE_CPUS = 0.75
const WARM_AFTER_MS = 1000
const WARM_REQUESTS = 2000 // in all, over WARM_CONNS connections at a time
const WARM_PER_CONN = 100 // then the connection closes and another opens
const WARM_CONNS = 4
const WARM_BUDGET_MS = 500 // whatever was done by then is enough

// Three ways apps answer: headers set one by one and a string body, all
// headers at once with a Buffer body, and the implicit defaults.
const BODY = Buffer.from('warm')
const HEADERS = { 'content-type': 'text/plain', 'content-length': BODY.length }
const REQUEST = Buffer.from('GET /warm HTTP/1.1\r\nHost: localhost\r\nUser-Agent: wattd-warm\r\nAccept: */*\r\n\r\n')

// canWarm tells whether the process's HTTP servers are watched by
// something other than the preload: then warm-up requests would show up
// in it as the app's, and there is no warm-up. The preload's own request
// metrics (ours: [channel, subscriber] pairs) subscribe to Node.js's
// server channels and ignore servers wattd does not manage; they are
// taken off for the look at the channels and put back at once.
function canWarm (server, ours) {
  const http = require('node:http')
  if (!(server instanceof http.Server)) return false // net, TLS, HTTP/2: other code paths
  if (http.Server.prototype.emit !== require('node:events').EventEmitter.prototype.emit) return false
  const dc = require('node:diagnostics_channel')
  for (const [name, fn] of ours) dc.unsubscribe(name, fn)
  try {
    for (const name of ['http.server.request.start', 'http.server.response.finish', 'http.server.response.created']) {
      if (dc.hasSubscribers(name)) return false
    }
  } finally {
    for (const [name, fn] of ours) dc.subscribe(name, fn)
  }
  return true
}

// warmHTTP serves requests to itself on 127.0.0.1 with nativeListen (the
// preload's redirection would take the listen() otherwise), then closes
// everything and calls done({ requests, ms }) once, also on failure. It
// returns a function that ends it at once (the standby is promoted).
function warmHTTP (nativeListen, done) {
  const http = require('node:http')
  const net = require('node:net')
  const start = performance.now()
  let served = 0
  let sent = 0
  let ended = false
  const clients = new Set()
  let n = 0
  // The class rather than createServer: an agent may wrap createServer to
  // add a listener of its own to every server it makes.
  const server = new http.Server((req, res) => {
    served++
    switch (n++ % 3) {
      case 0:
        res.setHeader('content-type', 'text/plain; charset=utf-8')
        res.setHeader('content-length', 4)
        res.end('warm')
        break
      case 1:
        res.writeHead(200, HEADERS)
        res.end(BODY)
        break
      default:
        res.end('warm')
    }
  })
  const finish = (err) => {
    if (ended) return
    ended = true
    clearTimeout(timer)
    for (const c of clients) c.destroy()
    server.close()
    if (typeof server.closeAllConnections === 'function') server.closeAllConnections()
    if (err) warn('standby warm-up', err)
    done({ requests: served, ms: performance.now() - start })
  }
  const timer = setTimeout(finish, WARM_BUDGET_MS)
  timer.unref()
  server.on('error', finish)
  const client = (port) => {
    if (ended || sent >= WARM_REQUESTS) {
      if (clients.size === 0) finish()
      return
    }
    const sock = net.connect({ port, host: '127.0.0.1' })
    sock.unref()
    clients.add(sock)
    let left = 0
    let answered = 0
    let pending = ''
    const next = () => {
      if (ended) return
      if (left === 0 || sent >= WARM_REQUESTS) {
        sock.destroy()
        return
      }
      left--
      sent++
      sock.write(REQUEST)
    }
    sock.on('connect', () => {
      left = WARM_PER_CONN
      next()
    })
    // Every response ends with its 4-byte body "warm"; one request is
    // outstanding at a time, so a chunk that ends so completes it.
    sock.on('data', (chunk) => {
      pending += chunk.toString('latin1')
      if (pending.endsWith('warm')) {
        pending = ''
        answered++
        next()
      }
    })
    let failure = null
    sock.on('error', (err) => {
      failure = err
      sock.destroy()
    })
    sock.on('close', () => {
      clients.delete(sock)
      // A connection that got no answer at all is not retried: whatever
      // failed it (no loopback, no descriptors left) would fail the next.
      if (answered === 0 && !ended && sent < WARM_REQUESTS) return finish(failure || new Error('a warm-up connection closed unanswered'))
      client(port)
    })
  }
  try {
    server.unref()
    nativeListen.call(server, { port: 0, host: '127.0.0.1' }, () => {
      const port = server.address().port
      for (let i = 0; i < WARM_CONNS; i++) client(port)
    })
  } catch (err) {
    finish(err)
  }
  return () => finish()
}

// cpuIdle returns a function that tells how many of the CPUs this process
// may run on were idle since its previous call (idle and iowait time in
// /proc/stat), or null where that cannot be read. When the process may run
// on every CPU, only the file's first line, the machine's total, is read,
// so a machine with many CPUs costs no more; under a cpuset (a container
// pinned to some CPUs) the lines of those CPUs are added up instead.
function cpuIdle () {
  const fs = require('node:fs')
  const os = require('node:os')
  let fd
  try {
    fd = fs.openSync('/proc/stat', 'r')
  } catch {
    return null
  }
  const mine = allowedCPUs(fs, os)
  let buf = Buffer.alloc(mine === null ? 256 : 16384)
  const text = () => {
    let n = 0
    for (;;) {
      const got = fs.readSync(fd, buf, n, buf.length - n, n)
      n += got
      if (got === 0 || mine === null || n < buf.length) break
      const more = Buffer.alloc(buf.length * 2)
      buf.copy(more)
      buf = more
    }
    return buf.toString('latin1', 0, n)
  }
  // user nice system idle iowait irq softirq steal (guest is in user)
  const add = (sum, line) => {
    const f = line.trim().split(/\s+/).slice(1, 9).map(Number)
    sum.idle += f[3] + f[4]
    sum.total += f.reduce((a, b) => a + b, 0)
    sum.cpus++
  }
  const read = () => {
    const sum = { idle: 0, total: 0, cpus: 0 }
    const lines = text().split('\n')
    if (mine === null) {
      if (!lines[0].startsWith('cpu ')) throw new Error('/proc/stat: no cpu line')
      add(sum, lines[0])
      sum.cpus = os.availableParallelism()
    } else {
      for (const line of lines) {
        const m = /^cpu(\d+) /.exec(line)
        if (m !== null && mine.has(Number(m[1]))) add(sum, line)
      }
      if (sum.cpus === 0) throw new Error('/proc/stat: none of this process\'s CPUs')
    }
    return sum
  }
  let last
  try {
    last = read()
  } catch {
    fs.closeSync(fd)
    return null
  }
  const idle = () => {
    const now = read()
    const total = now.total - last.total
    const cpusIdle = total > 0 ? (now.idle - last.idle) / total * now.cpus : 0
    last = now
    return cpusIdle
  }
  idle.close = () => fs.closeSync(fd)
  return idle
}

// allowedCPUs returns the numbers of the CPUs this process may run on
// (Cpus_allowed_list in /proc/self/status), or null when that is every
// CPU of the machine or cannot be read.
function allowedCPUs (fs, os) {
  let list
  try {
    list = /^Cpus_allowed_list:\s*(\S+)/m.exec(fs.readFileSync('/proc/self/status', 'latin1'))
  } catch {
    return null
  }
  if (list === null) return null
  const set = new Set()
  for (const part of list[1].split(',')) {
    const [a, b = a] = part.split('-').map(Number)
    if (!Number.isInteger(a) || !Number.isInteger(b) || b < a || b - a > 65536) return null
    for (let c = a; c <= b; c++) set.add(c)
  }
  return set.size >= os.cpus().length ? null : set
}

// startWarm runs warmHTTP once the machine has a CPU to spare, or
// WARM_AFTER_MS from now, if ok() still says it may then (an agent may
// have been loaded meanwhile), and passes done its report with after, the
// milliseconds it waited. The function it returns cancels it, or ends it
// if it runs.
function startWarm (ok, nativeListen, done) {
  let stop = null
  let timer = null
  let idle = null
  const begin = Date.now()
  const go = () => {
    if (idle !== null) idle.close()
    idle = null
    try {
      if (!ok()) return
    } catch (err) {
      warn('standby warm-up', err)
      return
    }
    const after = Date.now() - begin
    stop = warmHTTP(nativeListen, (w) => done({ ...w, after }))
  }
  const look = () => {
    let spare = false
    try {
      spare = idle() >= IDLE_CPUS
    } catch {
      idle.close()
      idle = null
    }
    const left = WARM_AFTER_MS - (Date.now() - begin)
    if (spare || left <= 0) return go()
    timer = setTimeout(idle === null ? go : look, idle === null ? left : Math.min(IDLE_EVERY_MS, left))
    timer.unref()
  }
  idle = cpuIdle()
  timer = idle === null ? setTimeout(go, WARM_AFTER_MS) : setTimeout(look, IDLE_FIRST_MS)
  timer.unref()
  return () => {
    clearTimeout(timer)
    if (idle !== null) idle.close()
    idle = null
    if (stop !== null) stop()
  }
}

module.exports = { canWarm, startWarm }
