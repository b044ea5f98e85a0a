// wattd worker preload for Node.js.
//
// wattd starts every Node.js worker as `node --require <this file> <entry>`,
// so this runs before the application, whether the app is CommonJS or ESM.
// It lets an unmodified app run under wattd:
//
//   * Control channel. It speaks the protocol of ipc/protocol.go on the fd in
//     WATTD_CONTROL_FD (4-byte big-endian length + JSON): hello/welcome,
//     ready, stats, drain/drained. If the channel closes, wattd is gone and
//     the worker exits, so a dead supervisor never leaves orphans serving.
//
//   * Listen redirection. wattd passes already-listening sockets the systemd
//     way (LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID, fds from 3): "http", the
//     public TCP port (entrypoint only), and "mesh", this worker's Unix
//     socket. The app's FIRST server.listen(), whatever it asked for, is
//     turned into listen({fd}) on "http" (entrypoint) or "mesh" (other
//     apps). That is how several worker processes share one public port, and
//     why the app's own port setting does not matter. Later listen() calls
//     are left alone, except the duplicate binding described at
//     isDuplicateBinding.
//
//   * Mesh for the entrypoint. Its app is also served on the "mesh" socket:
//     mesh connections are handed to the app's server as if it had accepted
//     them (for http.Server and net.Server), or, for TLS and HTTP/2 servers
//     whose connection handling expects TLS or h2 framing, requests read by a
//     plain HTTP/1.1 server are re-emitted on the app's server.
//
//   * Drain. On "drain" the redirected servers stop accepting, keep-alive
//     connections are closed once their current response is done, and
//     "drained" is sent when no connection is left. The process is not ended
//     here: wattd sends SIGTERM after "drained", and an app that handles
//     SIGTERM is kept up until then so its handler runs (holdUntilSigterm).
//
// Rules this file keeps: only node: builtins; nothing it does may throw into
// the app (every callback is guarded); none of its handles keeps the process
// alive on its own (control socket, timers and the mesh listener are
// unref'd), the one exception being the hold just mentioned; and when the
// process was not started by wattd for this very pid it does nothing at all.
'use strict'

// Everything lives in a function so nothing leaks into the module scope of
// the app, and one try/catch can make the whole preload fail safe.
function main () {
  const { isMainThread } = require('node:worker_threads')
  // --require preloads also run in worker threads; the sockets belong to
  // the main thread only.
  if (!isMainThread) return

  const env = process.env
  const listenPid = env.LISTEN_PID
  // LISTEN_PID names the process the fds are meant for. Any other value
  // means we inherited the variables from a parent that owns the sockets:
  // touch nothing, not even the environment.
  if (listenPid !== undefined && listenPid !== String(process.pid)) return
  if (env.WATTD_CONTROL_FD === undefined && listenPid === undefined) return // not under wattd

  const config = {
    listenFds: env.LISTEN_FDS,
    listenNames: env.LISTEN_FDNAMES,
    controlFd: env.WATTD_CONTROL_FD,
    statsMs: env.WATTD_STATS_INTERVAL_MS
  }
  // Remove what only this process may use, so programs the app spawns do
  // not mistake our sockets for theirs. The informational variables
  // (WATTD_APP_ID, WATTD_WORKER_ID, WATTD_ENTRYPOINT, WATTD_MESH_DIR) stay:
  // apps read them to know who they are and to reach each other.
  for (const k of ['LISTEN_FDS', 'LISTEN_FDNAMES', 'LISTEN_PID', 'WATTD_CONTROL_FD',
    'WATTD_PROTOCOL', 'WATTD_STATS_INTERVAL_MS']) {
    delete env[k]
  }

  const fds = listenPid === undefined ? {} : parseListenFds(config.listenFds, config.listenNames)
  const state = newState()
  if (config.controlFd !== undefined) openControl(state, toInt(config.controlFd))
  if (fds.http !== undefined || fds.mesh !== undefined) patchListen(state, fds)
  if (state.control) startStats(state, toInt(config.statsMs) || 2000)
}

const net = require('node:net')

const LISTEN_FDS_START = 3 // first passed fd, as in sd_listen_fds(3)
const PROTOCOL_VERSION = 1
const MAX_FRAME = 1 << 20 // ipc.MaxFrame
const EXIT_GRACE_MS = 500 // time to flush output once wattd is gone

// Per-server bookkeeping, kept off the server objects so the app never sees
// extra properties.
const meshOf = new WeakMap() // primary server -> its mesh server
const nativeClose = new WeakMap() // server -> the close() it had before ours
const closedByDrain = new WeakSet()

function newState () {
  return {
    control: null, // net.Socket of the control channel
    welcomed: false,
    version: 0, // protocol version from welcome
    pending: [], // messages held back until welcome
    primary: null, // { server, name, requestedPort }
    servers: new Set(), // every server we manage: primary(s) and mesh
    sockets: new Set(), // open connections of those servers
    inFlight: new Set(), // ServerResponse objects not closed yet
    requestsDone: 0,
    readySent: false,
    draining: false,
    drainedSent: false,
    idleSweep: false
  }
}

function warn (what, err) {
  try {
    const detail = err === undefined ? '' : ': ' + (err && err.message ? err.message : String(err))
    process.stderr.write(`wattd preload: ${what}${detail}\n`)
  } catch {}
}

// guard wraps a callback so an exception in our own code is reported on
// stderr instead of becoming an uncaught exception in the app.
function guard (what, fn) {
  return function guarded (...args) {
    try {
      return fn.apply(this, args)
    } catch (err) {
      warn(what, err)
    }
  }
}

function toInt (s) {
  if (typeof s !== 'string' || !/^\d+$/.test(s)) return undefined
  return Number(s)
}

// parseListenFds maps LISTEN_FDNAMES names to fd numbers.
function parseListenFds (count, names) {
  const n = toInt(count) || 0
  const list = (names || '').split(':')
  const out = {}
  for (let i = 0; i < n; i++) {
    const name = list[i]
    if (name && out[name] === undefined) out[name] = LISTEN_FDS_START + i
  }
  return out
}

// ---- control channel -------------------------------------------------------

function openControl (state, fd) {
  if (fd === undefined) {
    warn('WATTD_CONTROL_FD is not a number; running without wattd control')
    return
  }
  let sock
  try {
    sock = new net.Socket({ fd, readable: true, writable: true })
  } catch (err) {
    warn(`cannot open control fd ${fd}`, err)
    return
  }
  // The channel must never be the reason the process stays up.
  sock.unref()
  state.control = sock
  sock.on('error', (err) => warn('control channel', err)) // 'close' follows
  sock.on('close', () => {
    state.control = null
    // wattd is gone (crash, kill -9, or it gave up on us). Exit so no worker
    // keeps serving unsupervised; the short delay lets pending output out.
    setTimeout(() => process.exit(1), EXIT_GRACE_MS).unref()
  })

  let buf = null
  sock.on('data', guard('control channel read', (chunk) => {
    buf = buf ? Buffer.concat([buf, chunk]) : chunk
    // A read may hold part of a frame or several frames.
    while (buf && buf.length >= 4) {
      const n = buf.readUInt32BE(0)
      if (n > MAX_FRAME) {
        warn(`control frame of ${n} bytes is over the limit; closing the channel`)
        buf = null
        sock.destroy()
        return
      }
      if (buf.length < 4 + n) break
      const body = buf.subarray(4, 4 + n)
      buf = buf.length === 4 + n ? null : buf.subarray(4 + n)
      let msg
      try {
        msg = JSON.parse(body.toString('utf8'))
      } catch (err) {
        warn('bad control frame', err)
        continue
      }
      guard('control message', onMessage)(state, msg)
    }
  }))

  writeFrame(state, { type: 'hello', versions: [PROTOCOL_VERSION], pid: process.pid, runtime: 'node ' + process.version })
}

function onMessage (state, msg) {
  if (!msg || typeof msg !== 'object') return
  switch (msg.type) {
    case 'welcome':
      state.welcomed = true
      state.version = msg.version
      for (const m of state.pending.splice(0)) writeFrame(state, m)
      break
    case 'error':
      warn(`wattd refused this worker: ${msg.error}`)
      break
    case 'drain':
      startDrain(state)
      break
    // Unknown types are ignored, as the protocol requires.
  }
}

// send writes msg once the handshake is done; before that it is held back
// (ready, drained) or dropped (stats, which the next tick repeats anyway).
function send (state, msg) {
  if (!state.control) return
  if (state.welcomed) writeFrame(state, msg)
  else if (msg.type !== 'stats') state.pending.push(msg)
}

// writeFrame never throws: a broken channel just drops the message, and the
// channel's 'close' handler takes care of the rest.
function writeFrame (state, msg) {
  const sock = state.control
  if (!sock || sock.destroyed || !sock.writable) return
  try {
    const body = Buffer.from(JSON.stringify(msg), 'utf8')
    const frame = Buffer.allocUnsafe(4 + body.length)
    frame.writeUInt32BE(body.length, 0)
    body.copy(frame, 4)
    sock.write(frame)
  } catch (err) {
    warn(`cannot send ${msg.type}`, err)
  }
}

// ---- stats -----------------------------------------------------------------

function startStats (state, intervalMs) {
  const { performance } = require('node:perf_hooks')
  let prev = performance.eventLoopUtilization()
  const timer = setInterval(guard('stats', () => {
    const now = performance.eventLoopUtilization()
    const elu = performance.eventLoopUtilization(now, prev).utilization
    prev = now
    const mem = process.memoryUsage()
    send(state, {
      type: 'stats',
      stats: {
        elu,
        heapUsed: mem.heapUsed,
        heapTotal: mem.heapTotal,
        rss: mem.rss,
        activeConns: state.sockets.size,
        requestsDone: state.requestsDone
      }
    })
  }), intervalMs)
  timer.unref()
}

// ---- listen redirection ----------------------------------------------------

function patchListen (state, fds) {
  const nativeListen = net.Server.prototype.listen
  // The primary listens on "http" when this worker has it (the entrypoint),
  // else on "mesh".
  const name = fds.http !== undefined ? 'http' : 'mesh'
  let claimed = false

  // A named function keeps stack traces and Function.name readable.
  net.Server.prototype.listen = function listen (...args) {
    let req
    try {
      req = parseListenArgs(args)
    } catch (err) {
      warn('cannot read listen() arguments', err)
    }
    // A server handed an fd or handle by the app itself is not ours to move.
    if (req && !req.handle) {
      if (!claimed) {
        claimed = true
        return redirect(state, fds, name, nativeListen, this, req)
      }
      let dup = false
      try {
        dup = isDuplicateBinding(state, this, req)
      } catch (err) {
        warn('listen', err)
      }
      if (dup) return refuseDuplicate(this, req)
    }
    return nativeListen.apply(this, args)
  }
}

// parseListenArgs reads every listen() form, as net.Server does:
// (port[, host][, backlog][, cb]), (path[, backlog][, cb]),
// (options[, cb]) and (handle[, backlog][, cb]).
function parseListenArgs (args) {
  const last = args[args.length - 1]
  const req = { cb: typeof last === 'function' ? last : null }
  const a0 = args[0]
  // net.Server reads backlog from options or from the 2nd/3rd argument.
  const num = (x) => { const v = Number(x); return v >= 0 ? v : 0 }
  if (a0 !== null && typeof a0 === 'object') {
    if (a0._handle || a0.handle || a0.fd !== undefined) req.handle = true
    req.port = a0.port
    req.host = a0.host
    req.path = a0.path
    req.backlog = a0.backlog
    req.signal = a0.signal
    return req
  }
  if (typeof a0 === 'string' && !(Number(a0) >= 0)) {
    req.path = a0
  } else {
    req.port = a0
    if (typeof args[1] === 'string') req.host = args[1]
  }
  req.backlog = (typeof args[1] !== 'function' && num(args[1])) ||
    (typeof args[2] !== 'function' && num(args[2])) || undefined
  return req
}

// redirect performs the app's first listen() on the passed socket instead.
function redirect (state, fds, name, nativeListen, server, req) {
  const opts = { fd: fds[name] }
  if (req.backlog) opts.backlog = req.backlog
  if (req.signal) opts.signal = req.signal // the app may still close it by abort
  try {
    state.primary = { server, name, requestedPort: req.port }
    adopt(state, server)
    if (name === 'mesh') reportSocketPath(server, opts.fd)
    server.once('listening', guard('listening', () => onPrimaryListening(state, fds, server, name, nativeListen)))
  } catch (err) {
    warn('cannot watch the server', err)
  }
  return req.cb ? nativeListen.call(server, opts, req.cb) : nativeListen.call(server, opts)
}

function onPrimaryListening (state, fds, server, name, nativeListen) {
  if (name === 'http' && fds.mesh !== undefined) {
    startMesh(state, server, fds.mesh, nativeListen, (ok) => sendReady(state, ok ? ['http', 'mesh'] : ['http']))
  } else {
    sendReady(state, [name])
  }
}

function sendReady (state, listeners) {
  if (state.readySent) return
  state.readySent = true
  send(state, { type: 'ready', listeners })
}

// isDuplicateBinding spots a later listen() that binds the app that is
// already redirected a second time on the same port. Fastify does this when
// told host "localhost": after the first server is up it creates one more
// server per other address of localhost (::1, ...) with the same handler and
// the first server's port, and with a Unix-socket primary the port is even
// undefined, which would open a random TCP port. Such a server is recognised
// by sharing a 'request' handler with the primary and asking for the
// primary's port (the one the app asked for, or the real one) or for none.
function isDuplicateBinding (state, server, req) {
  const p = state.primary
  if (!p || server === p.server || req.path != null) return false
  const port = req.port == null || req.port === '' ? 0 : Number(req.port)
  const addr = p.server.address()
  const realPort = addr && typeof addr === 'object' ? addr.port : undefined
  if (!(port === 0 || port === Number(p.requestedPort) || port === realPort)) return false
  const theirs = server.listeners('request')
  if (theirs.length === 0) return false
  return p.server.listeners('request').some((h) => h !== onRequestHook && theirs.includes(h))
}

// refuseDuplicate fails that listen() with EADDRINUSE, which is the truth:
// the port is taken, by the primary. Fastify ignores that error for its
// extra bindings; the primary already serves every request.
function refuseDuplicate (server, req) {
  const port = req.port == null ? 'any port' : `port ${req.port}`
  const where = req.host ? `${req.host}, ${port}` : port
  warn(`not binding the same app again on ${where}; wattd already routes its traffic to it`)
  const err = new Error(`listen EADDRINUSE: address already in use (${where})`)
  err.code = 'EADDRINUSE'
  err.errno = -require('node:os').constants.errno.EADDRINUSE
  err.syscall = 'listen'
  if (req.host) err.address = req.host
  if (req.port != null) err.port = req.port
  // net.Server reports bind errors asynchronously too.
  process.nextTick(() => server.emit('error', err))
  return server
}

// adopt starts counting the primary's connections and requests and wraps
// its close() (see wrapClose).
function adopt (state, server) {
  state.servers.add(server)
  server.prependListener('connection', guard('connection', (sock) => trackSocket(state, sock)))
  // Hook 'request' on http/https servers (they have closeIdleConnections),
  // and on others only when the app already handles it: adding the first
  // 'request' listener to an HTTP/2 server switches it to the compatibility
  // API, which would fight an app that handles 'stream' itself.
  if (typeof server.closeIdleConnections === 'function' || server.listenerCount('request') > 0) {
    server.prependListener('request', onRequestHook)
    requestHookState.set(server, state)
  }
  wrapClose(state, server)
}

const requestHookState = new WeakMap() // server -> state, for onRequestHook

// onRequestHook is one shared function (not a closure per server) so that
// isDuplicateBinding can tell it apart from the app's handlers.
function onRequestHook (req, res) {
  try {
    // Mesh requests of TLS/HTTP2 apps are re-emitted with `this` = primary.
    const state = requestHookState.get(this)
    if (state) trackResponse(state, req, res)
  } catch (err) {
    warn('request', err)
  }
}

function trackSocket (state, sock) {
  if (state.sockets.has(sock)) return // injected mesh sockets pass twice
  state.sockets.add(sock)
  sock.once('close', guard('connection close', () => {
    state.sockets.delete(sock)
    checkDrained(state)
  }))
}

// trackResponse runs for every request, so it allocates nothing per
// request: one shared 'close' listener finds its state through the response.
const kState = Symbol('wattd.state')

function trackResponse (state, req, res) {
  state.requestsDone++
  state.inFlight.add(res)
  res[kState] = state
  if (state.draining) closeAfter(req, res)
  res.on('close', onResponseClose) // 'close' is emitted once per response
}

function onResponseClose () {
  const state = this[kState]
  try {
    state.inFlight.delete(this)
    // The connection may be idle now; during a drain nothing keeps it.
    if (state.draining) sweepIdle(state)
  } catch (err) {
    warn('response close', err)
  }
}

// closeAfter makes Node close the connection once this response is sent,
// by the documented means of a "Connection: close" header.
function closeAfter (req, res) {
  if (res.headersSent || req.httpVersionMajor >= 2) return // h2 forbids it
  try {
    res.setHeader('Connection', 'close')
  } catch {}
}

// wrapClose keeps the app's own close() working after a drain. Once drained
// the server is already closed by us, and a plain close() would report
// ERR_SERVER_NOT_RUNNING to an app that does `server.close(cb)` on SIGTERM,
// which many treat as a failure. Closing the primary also stops its mesh
// listener, which is unref'd and would otherwise keep serving.
function wrapClose (state, server) {
  const original = server.close
  nativeClose.set(server, original)
  let closed = false
  server.once('close', () => { closed = true })
  server.close = function close (cb) {
    try {
      const mesh = meshOf.get(this)
      if (mesh && mesh.listening) nativeClose.get(mesh).call(mesh)
    } catch (err) {
      warn('closing the mesh listener', err)
    }
    if (closedByDrain.has(this) && !this.listening) {
      if (typeof this.closeIdleConnections === 'function') this.closeIdleConnections()
      if (typeof cb === 'function') {
        if (closed) process.nextTick(cb)
        else this.once('close', () => cb())
      }
      return this
    }
    return original.apply(this, arguments)
  }
}

// reportSocketPath makes address() of a server listening on a passed Unix
// socket return its path, as it does for listen(path). Node cannot know the
// path of an fd it was given and returns null, which code such as Fastify's
// startup log dereferences.
function reportSocketPath (server, fd) {
  const original = server.address
  let path
  server.address = function address () {
    const a = original.call(this)
    if (a !== null || !this.listening) return a
    if (path === undefined) path = unixSocketPath(fd) || `wattd-mesh-fd-${fd}`
    return path
  }
}

// unixSocketPath finds the path a Unix socket fd is bound to, on Linux, by
// its inode in /proc/net/unix.
function unixSocketPath (fd) {
  try {
    const fs = require('node:fs')
    const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/self/fd/${fd}`))
    if (!m) return null
    // Num RefCount Protocol Flags Type St Inode [Path]
    for (const line of fs.readFileSync('/proc/net/unix', 'utf8').split('\n')) {
      const f = /^\s*\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+(\d+)\s+(.+)$/.exec(line)
      if (f && f[1] === m[1]) return f[2]
    }
  } catch {}
  return null
}

// ---- mesh for the entrypoint -----------------------------------------------

// startMesh serves the entrypoint's app on the mesh socket too and calls
// done(true) once listening, done(false) if it cannot.
function startMesh (state, app, fd, nativeListen, done) {
  let finished = false
  const finish = (ok) => { if (!finished) { finished = true; done(ok) } }

  let mesh
  if (typeof app.setSecureContext === 'function' || typeof app.updateSettings === 'function') {
    // A TLS (https) or HTTP/2 server would expect TLS or h2 framing on a
    // connection it is handed, but the mesh speaks plain HTTP/1.1, so read
    // the requests with a plain HTTP server and hand those over instead.
    if (app.listenerCount('request') === 0) {
      warn('the app server handles no HTTP requests; not serving it on the mesh')
      finish(false)
      return
    }
    mesh = require('node:http').createServer()
    for (const k of ['keepAliveTimeout', 'headersTimeout', 'requestTimeout', 'timeout', 'maxHeadersCount', 'maxRequestsPerSocket']) {
      if (typeof app[k] === 'number') mesh[k] = app[k]
    }
    mesh.on('request', (req, res) => { app.emit('request', req, res) })
    mesh.on('upgrade', (req, sock, head) => {
      if (!app.emit('upgrade', req, sock, head)) sock.destroy()
    })
  } else {
    // http.Server and plain net.Server: hand each mesh connection to the
    // app's server, the documented way to inject a connection. The app's
    // timeouts, parser options, clientError and upgrade handling, and its
    // closeIdleConnections() then apply to mesh traffic unchanged.
    mesh = new net.Server({ allowHalfOpen: app.allowHalfOpen === true, pauseOnConnect: app.pauseOnConnect === true })
    mesh.on('connection', (sock) => { app.emit('connection', sock) })
  }
  meshOf.set(app, mesh)
  state.servers.add(mesh)
  mesh.prependListener('connection', guard('connection', (sock) => trackSocket(state, sock)))
  nativeClose.set(mesh, mesh.close)
  reportSocketPath(mesh, fd)
  mesh.on('error', (err) => {
    warn('mesh listener', err)
    finish(false)
  })
  // Unref'd: the app's own server decides whether the process stays up.
  mesh.unref()
  try {
    nativeListen.call(mesh, { fd }, () => finish(true))
  } catch (err) {
    warn('mesh listener', err)
    finish(false)
  }
}

// ---- drain -----------------------------------------------------------------

function startDrain (state) {
  if (state.draining) return
  state.draining = true
  holdUntilSigterm(state)
  for (const res of state.inFlight) {
    if (res.req) closeAfter(res.req, res)
  }
  for (const server of state.servers) {
    try {
      if (!server.listening) continue
      closedByDrain.add(server)
      // http.Server.close() also closes the idle keep-alive connections.
      nativeClose.get(server).call(server)
    } catch (err) {
      warn('closing a server', err)
    }
  }
  sweepIdle(state)
  // With nothing open, no 'close' event would ever call checkDrained.
  setImmediate(guard('drain', () => checkDrained(state)))
}

// holdUntilSigterm keeps the process up between the drain and wattd's
// SIGTERM when the app has a SIGTERM handler. Once its servers are closed an
// app often has nothing left that keeps Node running, so it would exit on
// its own and its handler (flush logs, close pools) would never run, or a
// SIGTERM arriving during that exit would find the handler already gone.
// The control socket is the hold; it is let go as soon as SIGTERM arrives,
// so an app whose handler just closes things still ends by itself. Without
// an app handler there is nothing to wait for, and adding a listener of our
// own would turn off Node's default termination on SIGTERM.
function holdUntilSigterm (state) {
  if (!state.control || process.listenerCount('SIGTERM') === 0) return
  state.control.ref()
  process.prependOnceListener('SIGTERM', () => {
    if (state.control) state.control.unref()
  })
}

// sweepIdle closes keep-alive connections that have no request in flight.
// It runs once per turn of the event loop at most, after the response that
// triggered it has released its connection.
function sweepIdle (state) {
  if (state.idleSweep) return
  state.idleSweep = true
  setImmediate(guard('drain', () => {
    state.idleSweep = false
    for (const server of state.servers) {
      if (typeof server.closeIdleConnections === 'function') server.closeIdleConnections()
    }
  }))
}

function checkDrained (state) {
  if (!state.draining || state.drainedSent || state.sockets.size > 0) return
  state.drainedSent = true
  send(state, { type: 'drained' })
}

try {
  main()
} catch (err) {
  // Whatever went wrong, the app itself must still start.
  warn('disabled after an internal error', err)
}
