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
//   * Mesh client. Requests of the app to http://<app>.plt.local go straight
//     to a worker of that app over its Unix socket, by the membership table
//     wattd sends ("mesh"): node:http and fetch are wrapped for that. See
//     "mesh client" below.
//
//   * Drain. On "drain" the redirected servers stop accepting, every
//     connection's next response says "Connection: close", idle keep-alive
//     connections are closed once the worker has been quiet for a moment
//     (see DRAIN_QUIET_MS), and "drained" is sent when no connection is
//     left. The process is not ended here: wattd sends SIGTERM after
//     "drained", and an app that handles SIGTERM is kept up until then so
//     its handler runs (holdUntilSigterm).
//
// Rules this file keeps: only node: builtins; nothing it does may throw into
// the app (every callback is guarded); none of its handles keeps the process
// alive on its own (control socket, timers, the mesh listener and idle mesh
// connections are unref'd), the exceptions being the hold just mentioned and
// the bounded wait of an app's early mesh request for the table (whenTable);
// and when the process was not started by wattd for this very pid it does
// nothing at all.
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
  // The mesh table comes on the control channel: without it there is
  // nothing to route with, and nothing is patched.
  if (state.control) {
    try {
      startMeshClient(state)
    } catch (err) {
      warn('mesh client disabled after an internal error', err)
    }
  }
}

const net = require('node:net')

const LISTEN_FDS_START = 3 // first passed fd, as in sd_listen_fds(3)
const PROTOCOL_VERSION = 1
const MAX_FRAME = 1 << 20 // ipc.MaxFrame
const EXIT_GRACE_MS = 500 // time to flush output once wattd is gone

// Drain timing. A keep-alive client that has just had a response may be
// sending its next request on that connection at the very moment the
// server finds the connection idle; closing it then loses that request (the
// client reads a reset or an EOF, and only some clients retry, and only
// idempotent requests). So during a drain an idle connection is closed only
// once no response has finished for DRAIN_QUIET_MS: every idle connection
// has then been idle at least that long, a client that was about to send
// has sent (and got "Connection: close"), and one that has not is taken to
// be done. The quiet period is at most a quarter of wattd's drain timeout,
// and from half of it on idle connections are closed as soon as they are
// idle, so what is left of the timeout serves the requests still running.
const DRAIN_QUIET_MS = 1000
const DRAIN_TIMEOUT_MS = 10000 // when wattd sends none: its default grace

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
    reportStats: null, // sends one stats report; set by startStats
    primary: null, // { server, name, requestedPort }
    servers: new Set(), // every server we manage: primary(s) and mesh
    sockets: new Set(), // open connections of those servers
    inFlight: new Set(), // ServerResponse objects not closed yet
    requestsDone: 0,
    readySent: false,
    draining: false,
    drainedSent: false,
    // During a drain only: see DRAIN_QUIET_MS.
    quietMs: 0,
    quietUntil: 0, // performance.now() after which nothing waits for quiet
    lastDone: 0, // performance.now() when a response last finished
    sweepTimer: null,
    mesh: null // mesh client, see startMeshClient
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
      if (state.reportStats) state.reportStats()
      for (const m of state.pending.splice(0)) writeFrame(state, m)
      break
    case 'error':
      warn(`wattd refused this worker: ${msg.error}`)
      break
    case 'drain':
      startDrain(state, msg.timeoutMs)
      break
    case 'mesh':
      if (state.mesh !== null) setTable(state.mesh, msg.mesh)
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

// The first report goes out before ready (see sendReady and the welcome
// handler): wattd judges a worker's health by its reports once it has had
// one, so a worker stuck right after ready must already have reported.
function startStats (state, intervalMs) {
  const { performance } = require('node:perf_hooks')
  let prev = performance.eventLoopUtilization()
  const report = guard('stats', () => {
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
  })
  state.reportStats = report
  setInterval(report, intervalMs).unref()
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
  if (state.welcomed && state.reportStats) state.reportStats()
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
    // The connection may be idle now, and the quiet period starts over.
    if (state.draining) responseDoneWhileDraining(state)
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

function startDrain (state, timeoutMs) {
  if (state.draining) return
  state.draining = true
  const timeout = typeof timeoutMs === 'number' && timeoutMs > 0 ? timeoutMs : DRAIN_TIMEOUT_MS
  state.quietMs = Math.min(DRAIN_QUIET_MS, timeout / 4)
  state.lastDone = performance.now()
  state.quietUntil = state.lastDone + timeout / 2
  holdUntilSigterm(state)
  for (const res of state.inFlight) {
    if (res.req) closeAfter(res.req, res)
  }
  for (const server of state.servers) {
    try {
      if (!server.listening) continue
      closedByDrain.add(server)
      if (typeof server.closeIdleConnections === 'function') {
        // Stop accepting only: http.Server.close() would also close the
        // idle keep-alive connections at once, racing their clients'
        // next requests. Those wait for the quiet period.
        net.Server.prototype.close.call(server)
      } else {
        nativeClose.get(server).call(server)
      }
    } catch (err) {
      warn('closing a server', err)
    }
  }
  armSweep(state, state.quietMs)
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

// responseDoneWhileDraining restarts the quiet period: the connection of
// this response stays open if the response could not say "Connection:
// close" (its headers were sent before the drain), and its client must get
// the quiet period too. Past quietUntil nothing waits any more.
function responseDoneWhileDraining (state) {
  const now = performance.now()
  state.lastDone = now
  if (state.sweepTimer !== null) return // it looks at lastDone when it fires
  armSweep(state, now >= state.quietUntil ? 0 : state.quietMs)
}

function armSweep (state, ms) {
  state.sweepTimer = setTimeout(guard('drain', () => sweepIdle(state)), ms)
  // Open connections keep the process up, not this timer.
  state.sweepTimer.unref()
}

// sweepIdle closes the keep-alive connections that have no request in
// flight, once the worker has been quiet for state.quietMs (or the drain
// is past quietUntil); until then it waits for the rest of the period.
function sweepIdle (state) {
  state.sweepTimer = null
  const now = performance.now()
  const wait = state.lastDone + state.quietMs - now
  if (wait > 0 && now < state.quietUntil) {
    armSweep(state, Math.min(wait, state.quietUntil - now))
    return
  }
  for (const server of state.servers) {
    if (typeof server.closeIdleConnections === 'function') server.closeIdleConnections()
  }
}

function checkDrained (state) {
  if (!state.draining || state.drainedSent || state.sockets.size > 0) return
  state.drainedSent = true
  send(state, { type: 'drained' })
}

// ---- mesh client -------------------------------------------------------------
//
// Apps reach each other as http://<app>.plt.local/... . No DNS knows these
// names: the preload routes such requests itself, straight to a worker of the
// target app over that worker's Unix socket, using the membership table wattd
// sends on the control channel ({"type":"mesh"}, ipc.MeshTable). wattd is
// never on the path of a mesh request, except as the fallback below.
//
//   * node:http. http.request, http.get and new http.ClientRequest are
//     wrapped (on the module object, so every later require('http') and ESM
//     import sees them). For a *.plt.local host the request is made with a
//     keep-alive agent of one endpoint, picked round-robin; every other
//     option and the callback are kept. axios (follow-redirects), got and
//     node-fetch all end up here.
//   * fetch. globalThis.fetch is wrapped; other hosts go to the original
//     untouched. Mesh requests are made with http.request over the same
//     agents and resolve to a real Response.
//   * Connect failures. A new connection that cannot be made (ECONNREFUSED,
//     ENOENT: a slot whose worker just went away) is tried on the app's other
//     endpoints before the request gets its socket, so nothing was sent yet
//     and this is safe for every method, with http.request as well.
//   * Retries after sending (fetch only). A request that fails once sent
//     (ECONNRESET, socket hang up, EPIPE) is sent again to another endpoint
//     only when it is GET, HEAD or OPTIONS without a body: at most once per
//     endpoint and at most as many attempts as the app has endpoints. A body
//     is never sent twice. http.request cannot do this, as its ClientRequest
//     belongs to the app: the app sees the error, as it would without wattd.
//   * No worker, unknown app. An app with no ready worker goes to wattd's
//     mesh proxy (an HTTP forward proxy, on its Unix socket) whose 503
//     names the app and why.
//     A name not in the table (or no table, or no proxy) fails like a
//     failed DNS lookup (ENOTFOUND), with a message naming the app and the
//     apps that do exist.
//   * Timeout. timeoutMs of the table (0: none) bounds every mesh request:
//     a fetch up to the end of its response body (a streamed body then
//     errors with the TimeoutError), an http.request up to its response
//     head, as the app owns the response stream after that.
//
// Known limits: https://*.plt.local is not routed (the mesh is plain HTTP);
// nor are the npm "undici" package's own request()/fetch(), nor requests
// made in worker threads (the preload acts in the main thread only); a
// Request object's body and FormData/Blob bodies are read whole before they
// are sent; "deflate" response bodies must be zlib-wrapped, as RFC 9110
// says; a Response made here has type "default", and its url and redirected
// are own properties, which response.clone() does not copy.

const MESH_HOST = /\.plt\.local\.?$/i // a mesh host name
const MESH_HINT = /\.plt\.local/i // cheap test of a whole URL string first
const MESH_SUFFIX_LEN = '.plt.local'.length
// Idle keep-alive connections are closed after this: below Node's default
// server keepAliveTimeout (5 s), as in the Go client (mesh.Transport).
const MESH_IDLE_MS = 4000
const TABLE_WAIT_MS = 3000 // how long an early request waits for the table
const MAX_REDIRECTS = 20 // as fetch
const BUFFER_LIMIT = 64 * 1024 // fetch bodies up to this are read whole
const EAI_NONAME = -3008 // libuv's errno for ENOTFOUND

const kEndpoint = Symbol('wattd.meshEndpoint') // socket -> its endpoint
const kJob = Symbol('wattd.fetch') // ClientRequest -> its fetch job
const kTimer = Symbol('wattd.meshTimer') // ClientRequest -> its timeout

// Errors with which a new connection failed on every endpoint of the app:
// the request was sent nowhere.
const refusedEverywhere = new WeakSet()

// Errors after which an idempotent request may go to another endpoint.
const RETRY_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ECONNREFUSED', 'ENOENT', 'EAGAIN', 'ENOTCONN'])

// What fetch sends unless told otherwise (undici's defaults, less
// accept-encoding: compressing traffic between local processes only costs).
const FETCH_DEFAULT_HEADERS = Object.freeze({
  accept: '*/*',
  'accept-language': '*',
  'sec-fetch-mode': 'cors',
  'user-agent': 'node'
})
// Methods the fast path of fetch takes as they are (others go through
// new Request(), which validates and normalises them as fetch does).
const SIMPLE_METHOD = /^(?:GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH)$/i
// Request headers that describe a body, dropped when a redirect drops it.
const BODY_HEADERS = ['content-type', 'content-length', 'content-encoding', 'content-language', 'content-location']
// Request headers not carried to another origin on a redirect.
const CREDENTIAL_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'host']

function newMesh () {
  return {
    table: null, // the latest membership, see setTable
    waiting: null, // callbacks of requests made before the first table
    waitTimer: null,
    gaveUp: false, // no table came within TABLE_WAIT_MS: stop waiting
    agents: new Map(), // endpoint path -> MeshAgent
    proxyAgent: null, // ProxyAgent of table.proxySocket
    pendingAgent: null, // MeshAgent for http requests made before the table
    request: null, // node:http's own request()
    fetch: null, // the original globalThis.fetch
    classes: null // { MeshAgent, ProxyAgent, FailAgent }
  }
}

// startMeshClient patches node:http and fetch. Only called for a worker
// that wattd started (it has the control channel that brings the table).
function startMeshClient (state) {
  const mesh = newMesh()
  state.mesh = mesh // tables are kept even if a patch below fails
  patchHttp(mesh)
  patchFetch(mesh)
  try {
    // ESM imports of node:http made later then see the patched functions.
    require('node:module').syncBuiltinESMExports()
  } catch {}
}

// ---- membership

// setTable installs a mesh message's table. App ids are matched without
// regard to case. The round-robin position of an app survives updates, and
// agents of endpoints that are gone are retired: their idle connections are
// closed, requests still in flight on them finish.
function setTable (mesh, raw) {
  if (!raw || typeof raw !== 'object') return
  const old = mesh.table
  const apps = new Map()
  const live = new Set()
  const rawApps = raw.apps && typeof raw.apps === 'object' ? raw.apps : {}
  for (const id of Object.keys(rawApps)) {
    const a = rawApps[id] && typeof rawApps[id] === 'object' ? rawApps[id] : {}
    const key = id.toLowerCase()
    const endpoints = Array.isArray(a.endpoints) ? a.endpoints.filter((p) => typeof p === 'string' && p !== '') : []
    for (const p of endpoints) live.add(p)
    const prev = old !== null ? old.apps.get(key) : undefined
    apps.set(key, {
      id,
      endpoints,
      state: typeof a.state === 'string' ? a.state : '',
      reason: typeof a.reason === 'string' ? a.reason : '',
      // Workers of one app start at different offsets (pid), so that
      // their first connections do not all go to endpoint 0.
      next: prev !== undefined ? prev.next : process.pid
    })
  }
  for (const [path, agent] of mesh.agents) {
    if (!live.has(path)) {
      mesh.agents.delete(path)
      agent.retire()
    }
  }
  const proxy = parseProxy(raw.proxySocket)
  const oldProxy = old !== null ? old.proxy : null
  if (mesh.proxyAgent !== null && (proxy === null || oldProxy === null || proxy.href !== oldProxy.href)) {
    mesh.proxyAgent.retire()
    mesh.proxyAgent = null
  }
  const ms = Number(raw.timeoutMs)
  mesh.table = { apps, proxy, timeoutMs: Number.isFinite(ms) && ms > 0 ? ms : 0 }
  flushWaiters(mesh)
}

// parseProxy reads the path of the mesh proxy's Unix socket, or returns
// null. The preload uses the socket rather than the proxy's TCP address:
// the socket's directory admits only wattd's user, so it needs no
// credentials on every request.
function parseProxy (s) {
  if (typeof s !== 'string' || s === '') return null
  if (!s.startsWith('/')) {
    warn(`ignoring mesh proxy socket ${s}: not an absolute path`)
    return null
  }
  return { href: s, path: s }
}

// whenTable runs fn once a table is known. wattd sends it right after
// welcome, but an app may make a request before it has arrived; such
// requests wait for it, TABLE_WAIT_MS at most (once: after that nobody
// waits any more). The timer is ref'd: it stands for the app's request.
function whenTable (mesh, fn) {
  if (mesh.table !== null || mesh.gaveUp) {
    fn()
    return
  }
  if (mesh.waiting === null) {
    mesh.waiting = []
    mesh.waitTimer = setTimeout(guard('mesh', () => {
      mesh.gaveUp = true
      warn(`no mesh membership from wattd after ${TABLE_WAIT_MS} ms; *.plt.local requests fail until it comes`)
      flushWaiters(mesh)
    }), TABLE_WAIT_MS)
  }
  mesh.waiting.push(fn)
}

function flushWaiters (mesh) {
  const waiting = mesh.waiting
  if (waiting === null) return
  mesh.waiting = null
  clearTimeout(mesh.waitTimer)
  mesh.waitTimer = null
  for (const fn of waiting) guard('mesh', fn)()
}

// appOf returns the app id of a mesh host name: the label just before
// .plt.local, lower case ("API.plt.local." -> "api").
function appOf (host) {
  let h = host.toLowerCase()
  if (h.endsWith('.')) h = h.slice(0, -1)
  h = h.slice(0, h.length - MESH_SUFFIX_LEN)
  return h.slice(h.lastIndexOf('.') + 1)
}

// pick returns the app's next endpoint round-robin, skipping those in skip
// (an array or null), or null when every endpoint is skipped.
function pick (app, skip) {
  const list = app.endpoints
  const n = list.length
  for (let k = 0; k < n; k++) {
    const i = app.next % n
    app.next = i + 1
    if (skip === null || !skip.includes(list[i])) return list[i]
  }
  return null
}

function agentFor (mesh, endpoint) {
  let agent = mesh.agents.get(endpoint)
  if (agent === undefined) {
    agent = new mesh.classes.MeshAgent(mesh, endpoint)
    mesh.agents.set(endpoint, agent)
  }
  return agent
}

function proxyAgentFor (mesh) {
  if (mesh.proxyAgent === null) mesh.proxyAgent = new mesh.classes.ProxyAgent(mesh.table.proxy)
  return mesh.proxyAgent
}

function knownApps (table) {
  const ids = []
  for (const app of table.apps.values()) ids.push(app.id)
  return ids.length > 0 ? ids.sort().join(', ') : 'none'
}

// notFound is the error of a mesh name that cannot be reached at all: shaped
// like a failed DNS lookup, which is what the app would get without wattd,
// with the reason in the message, worded as the Go client words it.
function notFound (mesh, host, appId) {
  const t = mesh.table
  let why
  if (t === null) {
    why = `unknown app "${appId}" on the mesh (no mesh table received yet)`
  } else {
    const app = t.apps.get(appId)
    if (app !== undefined) {
      why = `no worker of app "${app.id}" is available` +
        (app.state ? ': ' + app.state : '') + (app.reason ? ': ' + app.reason : '')
    } else {
      why = `unknown app "${appId}" on the mesh (known: ${knownApps(t)})`
    }
  }
  const err = new Error(`getaddrinfo ENOTFOUND ${host}: ${why}`)
  err.errno = EAI_NONAME
  err.code = 'ENOTFOUND'
  err.syscall = 'getaddrinfo'
  err.hostname = host
  return err
}

// ---- agents

// defineAgents makes the agent classes, which need node:http.
function defineAgents (mesh, http) {
  // PoolAgent is a keep-alive agent with one pool for all its requests,
  // whatever host and port they name, that can be retired.
  class PoolAgent extends http.Agent {
    constructor () {
      super({ keepAlive: true, timeout: MESH_IDLE_MS })
      this.retired = false
    }

    getName () {
      return 'wattd-mesh'
    }

    keepSocketAlive (socket) {
      return !this.retired && super.keepSocketAlive(socket)
    }

    // retire stops keeping connections: idle ones are closed now, busy ones
    // when their response is done.
    retire () {
      this.retired = true
      for (const name of Object.keys(this.freeSockets)) {
        for (const s of this.freeSockets[name].slice()) s.destroy()
      }
    }
  }

  // MeshAgent holds the connections to one endpoint (null: the endpoint is
  // picked when connecting, for requests made before the table came).
  class MeshAgent extends PoolAgent {
    constructor (mesh, endpoint) {
      super()
      this.mesh = mesh
      this.endpoint = endpoint
    }

    // Returns nothing and calls cb once connected: the request gets its
    // socket only then, so a failed connect can move to another endpoint
    // before any byte of the request was written.
    createConnection (options, cb) {
      meshConnect(this.mesh, options, this.endpoint, cb)
    }

    // A connection made to another endpoint after this one refused serves
    // its one request and is closed, so that a pool holds only its own.
    keepSocketAlive (socket) {
      return socket[kEndpoint] === this.endpoint && super.keepSocketAlive(socket)
    }
  }

  // ProxyAgent holds the connections to wattd's mesh proxy, on its Unix
  // socket.
  class ProxyAgent extends PoolAgent {
    constructor (proxy) {
      super()
      this.proxy = proxy
    }

    createConnection (options) {
      return net.createConnection({ path: this.proxy.path })
    }
  }

  // FailAgent fails its request with err, asynchronously, the way a failed
  // DNS lookup does.
  class FailAgent extends http.Agent {
    constructor (err) {
      super()
      this.error = err
    }

    createConnection (options, cb) {
      process.nextTick(cb, this.error)
    }
  }

  mesh.classes = { MeshAgent, ProxyAgent, FailAgent }
  mesh.pendingAgent = new MeshAgent(mesh, null)
}

// meshConnect connects to endpoint, and if that fails, to the other
// endpoints of the app in round-robin order; cb(null, socket) or, when none
// can be connected to, cb(err) with the last error. Nothing has been sent
// on a socket before it connects, so any error here is safe to move on.
function meshConnect (mesh, options, endpoint, cb) {
  const host = typeof options.host === 'string' ? options.host : ''
  const appId = appOf(host)
  const tried = []
  const next = (lastErr) => {
    const app = mesh.table !== null ? mesh.table.apps.get(appId) : undefined
    const ep = app !== undefined ? pick(app, tried) : null
    if (ep !== null) {
      attempt(ep)
      return
    }
    if (lastErr) {
      refusedEverywhere.add(lastErr)
      cb(lastErr)
    } else {
      cb(notFound(mesh, host, appId))
    }
  }
  const attempt = (ep) => {
    tried.push(ep)
    let sock
    try {
      sock = net.createConnection(ep)
    } catch (err) {
      next(err)
      return
    }
    const onError = (err) => {
      sock.destroy()
      next(err)
    }
    sock.once('error', onError)
    sock.once('connect', () => {
      sock.removeListener('error', onError)
      sock[kEndpoint] = ep
      if (options.timeout) sock.setTimeout(options.timeout)
      cb(null, sock)
    })
  }
  if (endpoint !== null) attempt(endpoint)
  else whenTable(mesh, () => next(null))
}

// ---- node:http

function patchHttp (mesh) {
  const http = require('node:http')
  const { urlToHttpOptions } = require('node:url')
  const nativeRequest = http.request
  const NativeClientRequest = http.ClientRequest
  mesh.request = nativeRequest
  defineAgents(mesh, http)

  // meshArgs returns [options, cb] for a mesh request, null for any other
  // (which then goes to node:http untouched, arguments and all).
  function meshArgs (input, options, cb) {
    let base = null
    if (typeof input === 'string') {
      if (!MESH_HINT.test(input)) return null
      let u
      try {
        u = new URL(input)
      } catch {
        return null // node:http throws its own error for it
      }
      base = urlToHttpOptions(u)
    } else if (isURL(input)) {
      if (!MESH_HINT.test(input.hostname)) return null
      base = urlToHttpOptions(input)
    } else {
      // (options[, cb]): look before copying anything.
      if (input === null || typeof input !== 'object') return null
      const h = input.hostname || input.host
      if (typeof h !== 'string' || !MESH_HOST.test(h)) return null
      cb = options
      options = input
    }
    // Merge the way ClientRequest does.
    let opts
    if (typeof options === 'function') {
      cb = options
      opts = base === null ? {} : base
    } else {
      opts = Object.assign({}, base, options)
    }
    const host = typeof opts.hostname === 'string' && opts.hostname !== '' ? opts.hostname : opts.host
    if (typeof host !== 'string' || !MESH_HOST.test(host)) return null
    // An explicit Unix socket or another protocol is the app's own business.
    if (opts.socketPath != null || (opts.protocol != null && opts.protocol !== 'http:')) return null

    const appId = appOf(host)
    const t = mesh.table
    if (t === null && !mesh.gaveUp) {
      opts.agent = mesh.pendingAgent
    } else {
      const app = t !== null ? t.apps.get(appId) : undefined
      if (app !== undefined && app.endpoints.length > 0) {
        opts.agent = agentFor(mesh, pick(app, null))
      } else if (app !== undefined && t.proxy !== null) {
        // A known app with no ready worker: the proxy answers 503 with why.
        // A forward proxy wants the absolute URL in the request line; the
        // Host header stays the mesh name, as node:http sets it.
        opts.agent = proxyAgentFor(mesh)
        const path = opts.path == null || opts.path === '' ? '/' : String(opts.path)
        if (path.startsWith('/')) {
          const port = opts.port != null && opts.port !== '' && Number(opts.port) !== 80 ? ':' + opts.port : ''
          opts.path = 'http://' + host.toLowerCase() + port + path
        }
      } else {
        opts.agent = new mesh.classes.FailAgent(notFound(mesh, host, appId))
      }
    }
    return [opts, cb]
  }

  function request (input, options, cb) {
    let args = null
    try {
      args = meshArgs(input, options, cb)
    } catch (err) {
      warn('mesh request', err)
    }
    if (args === null) return Reflect.apply(nativeRequest, this, arguments)
    const req = nativeRequest(args[0], args[1])
    armTimeout(mesh, req, args[0])
    return req
  }

  function get (input, options, cb) {
    const req = request(input, options, cb)
    req.end()
    return req
  }

  // new http.ClientRequest(...) is routed too. Instances are made by the
  // real constructor (with new.target, so subclasses work) and share its
  // prototype, so instanceof and prototype patches keep working.
  function ClientRequest (input, options, cb) {
    let args = null
    try {
      args = meshArgs(input, options, cb)
    } catch (err) {
      warn('mesh request', err)
    }
    const target = new.target || ClientRequest
    if (args === null) return Reflect.construct(NativeClientRequest, arguments, target)
    const req = Reflect.construct(NativeClientRequest, args, target)
    armTimeout(mesh, req, args[0])
    return req
  }
  ClientRequest.prototype = NativeClientRequest.prototype
  Object.setPrototypeOf(ClientRequest, NativeClientRequest)

  http.request = request
  http.get = get
  http.ClientRequest = ClientRequest
}

// isURL tells a URL from an options object the way node:http does.
function isURL (x) {
  return x !== null && typeof x === 'object' && Boolean(x.href && x.protocol && x.auth === undefined && x.path === undefined)
}

// armTimeout bounds a mesh http request until its response head by the
// table's timeoutMs. The timer is unref'd: the request's own socket is what
// keeps the process up.
function armTimeout (mesh, req, opts) {
  try {
    const ms = mesh.table !== null ? mesh.table.timeoutMs : 0
    if (ms <= 0) return
    const timer = setTimeout(onHttpTimeout, ms, req, appOf(opts.hostname || opts.host), ms)
    timer.unref()
    req[kTimer] = timer
    req.once('response', clearHttpTimeout)
    req.once('close', clearHttpTimeout)
  } catch (err) {
    warn('mesh request timeout', err)
  }
}

function clearHttpTimeout () {
  clearTimeout(this[kTimer])
}

function onHttpTimeout (req, appId, ms) {
  try {
    const err = new Error(timeoutMessage(appId, ms))
    err.code = 'ETIMEDOUT'
    req.destroy(err)
  } catch (err) {
    warn('mesh request timeout', err)
  }
}

// ---- fetch

// webClasses finds the fetch classes. On Node 20 they are lazy getters that
// load undici (tens of ms), so they are looked up at the first mesh fetch,
// from the property descriptors as they were when the preload ran.
function webClasses () {
  const descs = {}
  for (const k of ['Response', 'Headers', 'Request', 'ReadableStream']) {
    descs[k] = Object.getOwnPropertyDescriptor(globalThis, k)
  }
  let classes = null
  return () => {
    if (classes === null) {
      classes = {}
      for (const k of Object.keys(descs)) {
        const d = descs[k]
        classes[k] = d === undefined ? undefined : d.get ? d.get.call(globalThis) : d.value
      }
    }
    return classes
  }
}

let web = null // () => { Response, Headers, Request, ReadableStream }

function patchFetch (mesh) {
  const original = globalThis.fetch
  if (typeof original !== 'function') return // fetch disabled in this node
  mesh.fetch = original
  web = webClasses()

  // The wrapper: anything that is not http://*.plt.local goes to the
  // original fetch with the very same arguments.
  const fetch = function fetch (input, init) {
    let url = null
    try {
      url = meshTarget(input)
    } catch {
      url = null // the original fetch reports what is wrong with input
    }
    if (url === null) return Reflect.apply(original, this, arguments)
    return meshFetch(mesh, input, init, url)
  }
  Object.defineProperty(fetch, 'length', { value: original.length })
  Object.defineProperty(fetch, 'name', { value: original.name })
  const d = Object.getOwnPropertyDescriptor(globalThis, 'fetch')
  Object.defineProperty(globalThis, 'fetch', {
    value: fetch,
    writable: true,
    enumerable: d ? d.enumerable : false,
    configurable: true
  })
}

// meshTarget returns the URL of a mesh fetch, or null.
function meshTarget (input) {
  if (typeof input === 'string') {
    return MESH_HINT.test(input) ? meshURL(new URL(input)) : null
  }
  if (input instanceof URL) return MESH_HINT.test(input.hostname) ? meshURL(input) : null
  if (input === null || input === undefined || typeof input === 'symbol') return null
  if (typeof input === 'object' && input instanceof web().Request) {
    return MESH_HINT.test(input.url) ? meshURL(new URL(input.url)) : null
  }
  // fetch takes anything else by its string value.
  const s = String(input)
  return MESH_HINT.test(s) ? meshURL(new URL(s)) : null
}

function meshURL (u) {
  return u.protocol === 'http:' && MESH_HOST.test(u.hostname) ? u : null
}

// A fetch in progress. One object per fetch, reused by its attempts and
// redirects; the ClientRequest of the current attempt points back to it.
function newJob (mesh, url, resolve, reject) {
  return {
    mesh,
    url, // URL of the current hop
    appId: appOf(url.hostname),
    resolve,
    reject,
    method: 'GET',
    headers: FETCH_DEFAULT_HEADERS, // a plain object, never changed in place
    body: null, // string or Buffer: can be sent again (redirect 307/308)
    stream: null, // ReadableStream: sent once, chunked
    streamed: false, // the stream has been read into a request
    signal: null,
    redirect: 'follow',
    retryable: true, // idempotent and without a body
    req: null, // ClientRequest of the current attempt
    endpoint: null, // its endpoint (null: via the proxy)
    tried: null, // endpoints that failed after sending
    lastError: null, // the error that made the last attempt fail
    attempts: 0,
    viaProxy: false,
    redirects: 0,
    redirected: false,
    timer: null,
    onAbort: null,
    done: false, // the promise is settled
    chunks: null, // buffered response body
    bodyEnd: null // ends a streamed response body, see bodyStream
  }
}

function meshFetch (mesh, input, init, url) {
  return new Promise((resolve, reject) => {
    const job = newJob(mesh, url, resolve, reject)
    let fast
    try {
      fast = readInit(job, input, init)
    } catch (err) {
      reject(err) // what fetch rejects with for bad headers and the like
      return
    }
    if (fast) {
      beginFetch(job)
    } else {
      readRequest(job, input, init).then(() => {
        try {
          beginFetch(job)
        } catch (err) {
          internalError(job, err)
        }
      }, reject)
    }
  })
}

// readInit reads input and init for the common cases (a string or URL, and
// the usual init members) without making a Request. It returns false when
// new Request() must do it (Request input, other bodies, odd values).
// Members fetch has and this does not use (cache, mode, credentials, ...,
// and Next.js's "next") are ignored.
function readInit (job, input, init) {
  if (typeof input !== 'string' && !(input instanceof URL)) return false
  if (init === undefined || init === null) return true
  if (typeof init !== 'object') return false
  const method = init.method
  if (method !== undefined) {
    if (typeof method !== 'string' || !SIMPLE_METHOD.test(method)) return false
    job.method = method.toUpperCase()
  }
  let type = null
  const body = init.body
  if (body !== undefined && body !== null) {
    if (job.method === 'GET' || job.method === 'HEAD') return false // fetch's TypeError
    if (typeof body === 'string') {
      job.body = body
      type = 'text/plain;charset=UTF-8'
    } else if (ArrayBuffer.isView(body)) {
      // Copied, as fetch does: the app may reuse its buffer at once.
      job.body = Buffer.from(new Uint8Array(body.buffer, body.byteOffset, body.byteLength))
    } else if (body instanceof ArrayBuffer) {
      job.body = Buffer.from(new Uint8Array(body))
    } else if (body instanceof URLSearchParams) {
      job.body = body.toString()
      type = 'application/x-www-form-urlencoded;charset=UTF-8'
    } else {
      return false
    }
  }
  const signal = init.signal
  if (signal !== undefined && signal !== null) {
    if (!(signal instanceof AbortSignal)) return false
    job.signal = signal
  }
  const redirect = init.redirect
  if (redirect !== undefined) {
    if (redirect !== 'follow' && redirect !== 'manual' && redirect !== 'error') return false
    job.redirect = redirect
  }
  if (init.window !== undefined && init.window !== null) return false
  const headers = init.headers
  if ((headers !== undefined && headers !== null) || type !== null) job.headers = headerObject(headers, type)
  job.retryable = isIdempotent(job.method) && job.body === null
  return true
}

// readRequest reads input and init through new Request(), which validates
// them as fetch does and encodes FormData, Blob and the rest. Streams
// (ReadableStream, async iterables) are sent as they come; other bodies are
// read whole first.
async function readRequest (job, input, init) {
  const { Request, ReadableStream } = web()
  const isReq = input instanceof Request
  const r = isReq && (init === undefined || init === null) ? input : new Request(input, init)
  job.url = new URL(r.url)
  job.appId = appOf(job.url.hostname)
  job.method = r.method
  job.redirect = r.redirect
  job.signal = r.signal
  if (r.body !== null) {
    const src = init !== undefined && init !== null ? init.body : undefined
    const streamed = src != null && typeof src === 'object' &&
      (src instanceof ReadableStream || (typeof src[Symbol.asyncIterator] === 'function' && !(src instanceof Blob) && !(src instanceof FormData)))
    if (streamed) job.stream = r.body
    else job.body = Buffer.from(await r.arrayBuffer())
  }
  job.headers = headerObject(r.headers, null)
  job.retryable = isIdempotent(job.method) && job.body === null && job.stream === null
}

function isIdempotent (method) {
  return method === 'GET' || method === 'HEAD' || method === 'OPTIONS'
}

// headerObject turns fetch headers (Headers, pairs or a record) into the
// plain object node:http takes, with fetch's defaults added. new Headers()
// validates them and lower-cases the names, as fetch would.
function headerObject (init, type) {
  const out = Object.create(null)
  if (init !== undefined && init !== null) {
    const { Headers } = web()
    const h = init instanceof Headers ? init : new Headers(init)
    for (const [k, v] of h) out[k] = out[k] === undefined ? v : out[k] + ', ' + v
  }
  if (type !== null && out['content-type'] === undefined) out['content-type'] = type
  for (const k of Object.keys(FETCH_DEFAULT_HEADERS)) {
    if (out[k] === undefined) out[k] = FETCH_DEFAULT_HEADERS[k]
  }
  return out
}

function withoutHeaders (headers, names) {
  const out = Object.create(null)
  for (const k of Object.keys(headers)) {
    if (!names.includes(k)) out[k] = headers[k]
  }
  return out
}

function beginFetch (job) {
  const signal = job.signal
  if (signal !== null) {
    if (signal.aborted) {
      job.done = true
      job.reject(signal.reason)
      return
    }
    job.onAbort = () => {
      try {
        abortFetch(job)
      } catch (err) {
        warn('mesh fetch abort', err)
      }
    }
    signal.addEventListener('abort', job.onAbort, { once: true })
  }
  const mesh = job.mesh
  if (mesh.table !== null || mesh.gaveUp) {
    startFetch(job)
  } else {
    whenTable(mesh, () => {
      try {
        startFetch(job)
      } catch (err) {
        internalError(job, err)
      }
    })
  }
}

function startFetch (job) {
  if (job.done) return
  const ms = job.mesh.table !== null ? job.mesh.table.timeoutMs : 0
  if (ms > 0) {
    job.timer = setTimeout(onFetchTimeout, ms, job, ms)
    job.timer.unref()
  }
  sendFetch(job)
}

// sendFetch makes one attempt: to an endpoint not tried yet, else to the
// proxy, else it fails the fetch.
function sendFetch (job) {
  if (job.done) return
  const mesh = job.mesh
  const t = mesh.table
  let agent
  let endpoint = null
  if (!job.viaProxy) {
    const app = t !== null ? t.apps.get(job.appId) : undefined
    if (app !== undefined && app.endpoints.length > 0) {
      endpoint = pick(app, job.tried)
      if (endpoint === null) {
        failFetch(job, job.lastError || notFound(mesh, job.url.hostname, job.appId))
        return
      }
      agent = agentFor(mesh, endpoint)
    } else if (app !== undefined && t.proxy !== null) {
      job.viaProxy = true // no ready worker: the proxy's 503 says why
    } else {
      failFetch(job, notFound(mesh, job.url.hostname, job.appId))
      return
    }
  }
  const u = job.url
  let path = u.pathname + u.search
  if (job.viaProxy) {
    agent = proxyAgentFor(mesh)
    path = u.origin + path
  }
  job.endpoint = endpoint
  job.attempts++
  let req
  try {
    req = mesh.request({ host: u.hostname, port: u.port, path, method: job.method, headers: job.headers, agent })
  } catch (err) {
    failFetch(job, err) // e.g. a header value node:http refuses
    return
  }
  job.req = req
  req[kJob] = job
  req.on('response', onFetchResponse)
  req.on('error', onFetchRequestError) // stays: errors after the end are ignored
  if (job.body !== null) req.end(job.body)
  else if (job.stream !== null) pumpBody(job, req)
  else req.end()
}

// pumpBody writes a streamed request body, minding backpressure.
function pumpBody (job, req) {
  let reader
  try {
    reader = job.stream.getReader()
  } catch (err) {
    req.destroy(err)
    return
  }
  job.stream = null // read once: never sent again (no retry, no 307/308)
  job.streamed = true
  let finished = false
  req.once('close', () => {
    if (!finished) reader.cancel().catch(noop)
  })
  const onChunk = ({ done, value }) => {
    if (req.destroyed) return
    if (done) {
      finished = true
      req.end()
      return
    }
    if (!(value instanceof Uint8Array)) {
      req.destroy(new TypeError('request body stream chunks must be Uint8Array'))
      return
    }
    if (req.write(value)) step()
    else req.once('drain', step)
  }
  // Every outcome ends in the request: an error of the app's stream or of
  // this code fails it (and so the fetch), never an unhandled rejection.
  const step = () => {
    reader.read().then(onChunk).catch((err) => req.destroy(err))
  }
  step()
}

function noop () {}

function isRedirect (status) {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308
}

// onFetchResponse handles the response head of an attempt (this: the
// ClientRequest). Bodies of known length up to BUFFER_LIMIT are read whole
// and given to Response as one buffer, which costs far less than a stream;
// others are streamed. The timeout runs until the Response is resolved.
function onFetchResponse (res) {
  const job = this[kJob]
  if (job.req !== this || job.done) {
    res.resume()
    return
  }
  try {
    handleResponse(job, res)
  } catch (err) {
    internalError(job, err)
  }
}

function handleResponse (job, res) {
  const status = res.statusCode
  if (isRedirect(status) && job.redirect !== 'manual' && res.headers.location !== undefined) {
    res.resume()
    followRedirect(job, status, res.headers.location)
    return
  }
  if (job.method === 'HEAD' || status === 101 || status === 204 || status === 205 || status === 304) {
    res.resume()
    resolveFetch(job, null, res)
    return
  }
  const enc = res.headers['content-encoding']
  const len = res.headers['content-length']
  if (enc === undefined && len !== undefined && Number(len) <= BUFFER_LIMIT) {
    job.chunks = []
    res.on('data', onBufferedData)
    res.on('end', onBufferedEnd)
    res.on('error', onBufferedError)
    res.on('close', onBufferedClose)
    return
  }
  resolveFetch(job, bodyStream(job, res, enc), res)
}

function onBufferedData (chunk) {
  const job = this.req[kJob]
  if (job.req === this.req && job.chunks !== null) job.chunks.push(chunk)
}

function onBufferedEnd () {
  const job = this.req[kJob]
  if (job.req !== this.req || job.done) return
  try {
    const chunks = job.chunks
    job.chunks = null
    resolveFetch(job, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks), this)
  } catch (err) {
    internalError(job, err)
  }
}

function onBufferedError (err) {
  const job = this.req[kJob]
  if (job.req !== this.req || job.done) return
  job.chunks = null
  try {
    attemptFailed(job, this.req, err)
  } catch (e) {
    internalError(job, e)
  }
}

function onBufferedClose () {
  if (!this.complete) onBufferedError.call(this, Object.assign(new Error('aborted'), { code: 'ECONNRESET' }))
}

function onFetchRequestError (err) {
  const job = this[kJob]
  if (job.req !== this || job.done) return
  try {
    attemptFailed(job, this, err)
  } catch (e) {
    internalError(job, e)
  }
}

// internalError ends a fetch that hit a bug of this file: the app gets a
// rejected fetch, never an uncaught exception.
function internalError (job, err) {
  warn('mesh fetch', err)
  const req = job.req
  job.bodyEnd = null
  failFetch(job, err)
  if (req !== null) req.destroy()
}

// attemptFailed decides what an error of an attempt leads to: the proxy when
// no endpoint took the connection, another endpoint for a retryable
// request, else a rejected fetch.
function attemptFailed (job, req, err) {
  job.req = null
  const t = job.mesh.table
  if (refusedEverywhere.has(err)) {
    // Sent nowhere, so any method may go to the proxy, which knows why no
    // worker answers; a stream already read into the request cannot.
    if (!job.viaProxy && !job.streamed && t !== null && t.proxy !== null) {
      job.viaProxy = true
      sendFetch(job)
      return
    }
  } else if (job.retryable && job.endpoint !== null && RETRY_CODES.has(err && err.code)) {
    const tried = job.tried || (job.tried = [])
    tried.push(job.endpoint)
    // The connection may have been made to another endpoint than the one
    // asked for (see meshConnect): that one failed too.
    const actual = req.socket ? req.socket[kEndpoint] : undefined
    if (actual !== undefined && !tried.includes(actual)) tried.push(actual)
    const app = t !== null ? t.apps.get(job.appId) : undefined
    if (app !== undefined && job.attempts < app.endpoints.length) {
      job.lastError = err
      sendFetch(job)
      return
    }
  }
  failFetch(job, err)
}

// followRedirect follows a redirect as fetch does (method and body rules,
// credentials dropped across origins, at most MAX_REDIRECTS). A target
// outside the mesh is handed to the original fetch.
function followRedirect (job, status, location) {
  if (job.redirect === 'error') {
    failFetch(job, new Error('unexpected redirect'))
    return
  }
  let next
  try {
    next = new URL(location, job.url)
  } catch (err) {
    failFetch(job, err)
    return
  }
  if (next.protocol !== 'http:' && next.protocol !== 'https:') {
    failFetch(job, new Error('URL scheme must be a HTTP(S) scheme'))
    return
  }
  if (++job.redirects > MAX_REDIRECTS) {
    failFetch(job, new Error('redirect count exceeded'))
    return
  }
  if ((status === 303 && job.method !== 'GET' && job.method !== 'HEAD') ||
      ((status === 301 || status === 302) && job.method === 'POST')) {
    job.method = 'GET'
    job.body = null
    job.stream = null
    job.streamed = false
    job.headers = withoutHeaders(job.headers, BODY_HEADERS)
  } else if (job.streamed) {
    failFetch(job, new Error('cannot follow a redirect with a streamed request body'))
    return
  }
  if (next.origin !== job.url.origin) job.headers = withoutHeaders(job.headers, CREDENTIAL_HEADERS)
  job.url = next
  job.redirected = true
  job.retryable = isIdempotent(job.method) && job.body === null
  job.tried = null
  job.lastError = null
  job.attempts = 0
  job.viaProxy = false
  if (meshURL(next) !== null) {
    job.appId = appOf(next.hostname)
    sendFetch(job)
    return
  }
  // Off the mesh: the original fetch takes it from here, signal and all.
  settle(job)
  const init = { method: job.method, headers: job.headers, redirect: job.redirect }
  if (job.signal !== null) init.signal = job.signal
  if (job.body !== null) init.body = job.body
  job.mesh.fetch(next.href, init).then((response) => {
    try {
      if (!response.redirected) Object.defineProperty(response, 'redirected', { value: true })
    } catch {}
    job.resolve(response)
  }, job.reject)
}

// settle marks the fetch as answered. Its timeout and abort stop here,
// unless a streamed body is still to come: then they stop when it ends
// (see bodyStream).
function settle (job) {
  job.done = true
  if (job.bodyEnd === null) release(job)
}

function release (job) {
  if (job.timer !== null) {
    clearTimeout(job.timer)
    job.timer = null
  }
  if (job.onAbort !== null) {
    job.signal.removeEventListener('abort', job.onAbort)
    job.onAbort = null
  }
}

// failFetch rejects with what fetch rejects network errors with.
function failFetch (job, err) {
  if (job.done) return
  settle(job)
  job.reject(new TypeError('fetch failed', { cause: err }))
}

function abortFetch (job) {
  const reason = job.signal.reason
  if (!job.done) {
    settle(job)
    job.reject(reason)
    if (job.req !== null) job.req.destroy()
  } else if (job.bodyEnd !== null) {
    job.bodyEnd(reason, true)
  }
}

function onFetchTimeout (job, ms) {
  job.timer = null
  try {
    const err = new DOMException(timeoutMessage(job.appId, ms), 'TimeoutError')
    if (!job.done) {
      settle(job)
      job.reject(err)
      if (job.req !== null) job.req.destroy()
    } else if (job.bodyEnd !== null) {
      job.bodyEnd(err, true) // the body is still coming: it fails
    }
  } catch (err) {
    internalError(job, err)
  }
}

function timeoutMessage (appId, ms) {
  return `mesh: app "${appId}" did not answer within ${ms} ms (mesh timeoutMs)`
}

// resolveFetch makes the Response: status, status text, every header in
// order (so several set-cookie stay several), and body (null, a buffer or a
// ReadableStream).
function resolveFetch (job, body, res) {
  const { Response, Headers } = web()
  const headers = new Headers()
  const raw = res.rawHeaders
  for (let i = 0; i < raw.length; i += 2) {
    try {
      headers.append(raw[i], raw[i + 1])
    } catch {} // a value fetch would not accept: left out
  }
  const status = res.statusCode
  let response
  try {
    response = new Response(body, { status, statusText: res.statusMessage || '', headers })
  } catch {
    // Response accepts statuses 200-599 and a strict status text only; the
    // wire may carry others (101, 6xx, odd text).
    try {
      const inRange = status >= 200 && status <= 599
      response = new Response(body, { status: inRange ? status : 200, headers })
      if (!inRange) {
        Object.defineProperty(response, 'status', { value: status })
        Object.defineProperty(response, 'ok', { value: false })
      }
    } catch (err) {
      job.bodyEnd = null
      failFetch(job, err)
      res.destroy()
      return
    }
  }
  Object.defineProperty(response, 'url', { value: job.url.href })
  if (job.redirected) Object.defineProperty(response, 'redirected', { value: true })
  settle(job)
  job.resolve(response)
}

const chunkSize = (chunk) => chunk.byteLength

// bodyStream turns a response body into a ReadableStream that pauses the
// socket when the reader falls behind, after undoing content-encoding as
// fetch does.
function bodyStream (job, res, enc) {
  const { ReadableStream } = web()
  const src = enc === undefined ? res : decoded(res, enc)
  let controller = null
  let ended = false
  // end closes the stream (err null) or errors it; cancel also drops the
  // connection (abort, timeout, or the reader gave up).
  const end = (err, cancel) => {
    if (ended) return
    ended = true
    job.bodyEnd = null
    release(job)
    if (cancel) {
      res.destroy()
      if (src !== res) src.destroy()
    }
    try {
      if (err === null) controller.close()
      else controller.error(err)
    } catch {}
  }
  const terminated = (cause) => new TypeError('terminated', { cause })
  job.bodyEnd = end
  return new ReadableStream({
    start (c) {
      controller = c
      src.on('data', (chunk) => {
        if (ended) return
        try {
          c.enqueue(chunk)
          if (c.desiredSize <= 0) src.pause()
        } catch (err) {
          end(err, true)
        }
      })
      src.on('end', () => end(null, false))
      src.on('error', (err) => end(terminated(err), false))
      res.on('close', () => {
        if (!res.complete) end(terminated(Object.assign(new Error('other side closed'), { code: 'ECONNRESET' })), false)
      })
    },
    pull () {
      src.resume()
    },
    cancel () {
      if (!ended) {
        end(null, true)
      }
    }
  }, { highWaterMark: BUFFER_LIMIT, size: chunkSize })
}

// decoded undoes content-encoding (gzip, deflate, br, and zstd where node
// has it); an encoding it does not know leaves the body as it came, as
// fetch does.
function decoded (res, enc) {
  const zlib = require('node:zlib')
  const codings = String(enc).toLowerCase().split(',')
  const chain = []
  for (let i = codings.length - 1; i >= 0; i--) {
    const c = codings[i].trim()
    if (c === 'gzip' || c === 'x-gzip') {
      chain.push(zlib.createGunzip({ flush: zlib.constants.Z_SYNC_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH }))
    } else if (c === 'deflate') {
      chain.push(zlib.createInflate({ flush: zlib.constants.Z_SYNC_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH }))
    } else if (c === 'br') {
      chain.push(zlib.createBrotliDecompress({
        flush: zlib.constants.BROTLI_OPERATION_FLUSH,
        finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH
      }))
    } else if (c === 'zstd' && typeof zlib.createZstdDecompress === 'function') {
      chain.push(zlib.createZstdDecompress())
    } else if (c !== 'identity' && c !== '') {
      for (const d of chain) d.destroy()
      return res
    }
  }
  if (chain.length === 0) return res
  return require('node:stream').pipeline(res, ...chain, noop)
}

try {
  main()
} catch (err) {
  // Whatever went wrong, the app itself must still start.
  warn('disabled after an internal error', err)
}
