// Listen redirection, the entrypoint's mesh socket and the drain.
'use strict'

const net = require('node:net')
const {
  DRAIN_QUIET_MS, DRAIN_TIMEOUT_MS, LISTEN_BACKLOG, meshOf, nativeClose, closedByDrain, warn, guard
} = require('./base.cjs')
const { send } = require('./control.cjs')
const { runRequestHooks } = require('./requests.cjs')
const { appLoaded, writeCompileCache } = require('./compilecache.cjs')

// ---- listen redirection ----------------------------------------------------

function patchListen (state, fds) {
  const nativeListen = net.Server.prototype.listen
  // The primary listens on "http" when this worker has it (the entrypoint),
  // else on "mesh". A standby learns its sockets only when promoted.
  const nameOf = () => fds.http !== undefined ? 'http' : 'mesh'
  let claimed = false
  if (state.standby !== null) {
    state.handlers.set('promote', (msg) => promote(state, fds, nativeListen, msg))
  }

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
        if (state.standby !== null && !state.standby.promoted) return hold(state, this, req, nativeListen)
        return redirect(state, fds, nameOf(), nativeListen, this, req)
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

// ---- standby ---------------------------------------------------------------

// hold keeps the app's first listen() of a standby pending: the server is
// not listening, so its 'listening' event and the listen callback come only
// once wattd promotes this worker, and until then nothing is accepted. The
// control channel keeps the process up meanwhile, since a server that does
// not listen holds no handle. Then the standby warms Node.js's HTTP code up
// (warm.cjs) until it is promoted or done, and says how it went.
function hold (state, server, req, nativeListen) {
  const sb = state.standby
  sb.held = { server, req }
  answerAddressWhileHeld(sb, server)
  if (state.control) state.control.ref()
  send(state, { type: 'standby' })
  appLoaded()
  if (sb.warmup) {
    // Loaded here, by standbys only, not in every worker's start.
    const { canWarm, startWarm } = require('./warm.cjs')
    const ours = state.metrics !== null ? state.metrics.serverChannels : []
    sb.stopWarm = startWarm(() => canWarm(server, ours), nativeListen, guard('standby warm-up', (w) => {
      sb.stopWarm = null
      if (!sb.promoted) send(state, { type: 'standby', warm: { requests: w.requests, ms: Math.round(w.ms), afterMs: Math.round(w.after) } })
    }))
  }
  return server
}

// answerAddressWhileHeld makes server.address() say, while the listen()
// is held, the address the promotion will listen on, where Node.js would
// say null: an app's next line after listen() commonly reads it
// (console.log(server.address().port)), and a standby would otherwise
// die of what works in every worker. The public socket is bound to the
// same address in every slot; a mesh socket's path differs by slot, and
// the lowest slot's is given until the promotion.
function answerAddressWhileHeld (sb, server) {
  const original = server.address
  let known
  server.address = function address () {
    const a = original.call(this)
    if (a !== null || sb.held === null || sb.held.server !== this) return a
    if (known === undefined) {
      const fd = heldFd(sb.fds)
      // Served on its mesh socket once promoted: as reportRequestedAddress.
      if (fd === null) known = null
      else known = fd.name === 'mesh' ? requestedAddress(sb.held.req) : socketAddress(fd.fd)
    }
    return known
  }
}

// heldFd is the descriptor a held listen() will take in the lowest slot:
// its "http" socket if this app has one (the entrypoint), else its "mesh"
// socket (sb.fds has "http.N" and "mesh.N").
function heldFd (fds) {
  const keys = Object.keys(fds)
  const want = keys.some((k) => k.startsWith('http.')) ? 'http' : 'mesh'
  let best = null
  for (const key of keys) {
    const { name, slot } = slotKey(key)
    if (name === want && (best === null || slot < best.slot)) best = { slot, fd: fds[key] }
  }
  return best === null ? null : { name: want, fd: best.fd }
}

// slotKey splits a standby's socket name, "http.1", into the socket's
// name and its slot.
function slotKey (key) {
  const dot = key.lastIndexOf('.')
  return { name: key.slice(0, dot), slot: Number(key.slice(dot + 1)) }
}

// promote makes this standby the worker of slot msg.worker: it keeps that
// slot's sockets ("http.N", "mesh.N"), closes its copies of every other
// slot's (a socket wattd closes must leave the port's group once its
// worker is gone, and would not while a copy stays open here), and
// performs the held listen() on them.
function promote (state, fds, nativeListen, msg) {
  const sb = state.standby
  if (sb.promoted) return
  sb.promoted = true
  if (sb.stopWarm) sb.stopWarm()
  const worker = typeof msg.worker === 'number' ? msg.worker : 0 // absent means 0
  const fs = require('node:fs')
  for (const [key, fd] of Object.entries(sb.fds)) {
    const { name, slot } = slotKey(key)
    if (slot === worker) {
      fds[name] = fd
      continue
    }
    try {
      fs.closeSync(fd)
    } catch (err) {
      warn(`closing another slot's socket ${key}`, err)
    }
  }
  process.env.WATTD_WORKER_ID = String(worker)
  try {
    if (globalThis.platformatic && typeof globalThis.platformatic === 'object') globalThis.platformatic.workerId = worker
  } catch {}
  if (state.control) state.control.unref()
  const held = sb.held
  sb.held = null
  if (held) redirect(state, fds, fds.http !== undefined ? 'http' : 'mesh', nativeListen, held.server, held.req)
  // The app's start-up code ran as worker -1: code that does something in
  // one worker only (a scheduler in worker 0) learns its slot here.
  if (state.events) {
    try {
      state.events.emit('promoted', { workerId: worker })
    } catch (err) {
      warn('a "promoted" event listener threw', err)
    }
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
  // The app's backlog if it asks for a longer one (the kernel caps it).
  // For an fd, net.Server reads it from the argument after the options
  // only, not from them.
  // Node passes it on as a 32-bit integer: a larger one would wrap.
  const asked = Number(req.backlog)
  const fits = Number.isInteger(asked) && asked > 0 && asked <= 0x7fffffff
  const backlog = Math.max(fits ? asked : 0, LISTEN_BACKLOG)
  if (req.signal) opts.signal = req.signal // the app may still close it by abort
  try {
    state.primary = { server, name, requestedPort: req.port }
    adopt(state, server)
    if (name === 'mesh') {
      reportRequestedAddress(server, req)
      server.prependListener('connection', localPeer)
    }
    server.once('listening', guard('listening', () => onPrimaryListening(state, fds, server, name, nativeListen)))
  } catch (err) {
    warn('cannot watch the server', err)
  }
  return req.cb ? nativeListen.call(server, opts, backlog, req.cb) : nativeListen.call(server, opts, backlog)
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
  appLoaded()
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

// adopt starts counting the primary's connections and wraps its close()
// (see wrapClose). It adds nothing per request: the 'request' hook is
// attached only while a feature needs it (see attachRequestHook).
function adopt (state, server) {
  state.servers.add(server)
  server.prependListener('connection', guard('connection', (sock) => trackSocket(state, sock)))
  // A TLS server's 'connection' is the raw TCP socket, and the response
  // being written is found on the TLS socket above it (see inFlight).
  if (isSecure(server)) {
    server.prependListener('secureConnection', guard('connection', (sock) => trackTLSSocket(state, sock)))
  }
  // Hook 'request' on http/https servers (they have closeIdleConnections),
  // and on others only when the app already handles it: adding the first
  // 'request' listener to an HTTP/2 server switches it to the compatibility
  // API, which would fight an app that handles 'stream' itself.
  if (typeof server.closeIdleConnections === 'function' || server.listenerCount('request') > 0) {
    requestHookState.set(server, state)
    state.hookable.push(server)
    if (state.requestHooks.length > 0) attachRequestHook(server)
    // For a feature that registers its hook after this.
    state.requestHookWanted ??= () => {
      for (const s of state.hookable) attachRequestHook(s)
    }
  }
  wrapClose(state, server)
}

// isSecure tells a TLS server (https, http2 secure) from a plain one.
function isSecure (server) {
  return server != null && typeof server.setSecureContext === 'function'
}

const requestHookState = new WeakMap() // server -> state, for onRequestHook
const hooked = new WeakSet() // servers onRequestHook is attached to

// attachRequestHook puts onRequestHook before the app's handlers, once:
// when a feature registered a per-request hook (requests.cjs) or a drain
// begins. Until then a request costs the preload nothing at all.
function attachRequestHook (server) {
  if (hooked.has(server)) return
  hooked.add(server)
  server.prependListener('request', onRequestHook)
}

// onRequestHook is one shared function (not a closure per server) so that
// isDuplicateBinding can tell it apart from the app's handlers.
function onRequestHook (req, res) {
  try {
    // Mesh requests of TLS/HTTP2 apps are re-emitted with `this` = primary.
    const state = requestHookState.get(this)
    if (state === undefined) return
    if (state.shedding !== null) shedRequest(state, req, res)
    if (state.draining) watchResponse(state, req, res)
    if (state.requestHooks.length > 0) runRequestHooks(state, req, res)
  } catch (err) {
    warn('request', err)
  }
}

function trackSocket (state, sock) {
  if (state.sockets.has(sock)) return // injected mesh sockets pass twice
  state.sockets.add(sock)
  sock.once('close', guard('connection close', () => {
    state.sockets.delete(sock)
    unshed(state, sock)
    checkDrained(state)
  }))
}

// trackTLSSocket keeps a TLS server's TLS sockets, which are not counted as
// connections (their TCP sockets are) but carry the HTTP responses.
function trackTLSSocket (state, sock) {
  state.tlsSockets.add(sock)
  sock.once('close', guard('connection close', () => {
    state.tlsSockets.delete(sock)
    unshed(state, sock)
  }))
}

// inFlight returns the HTTP/1 responses being written when a drain
// begins, from the connections already tracked: Node's http server sets
// socket._httpMessage to the response a connection is writing (from
// assignSocket until detachSocket), on every Node version wattd runs.
// A pipelined request queued behind it has no response on the socket yet;
// the "Connection: close" of the one before ends the connection anyway.
// HTTP/2 streams have no such header to set and are left to finish.
function inFlight (state) {
  const out = []
  for (const set of [state.sockets, state.tlsSockets]) {
    for (const sock of set) {
      const res = sock._httpMessage
      if (res && res.req && typeof res.setHeader === 'function') out.push(res)
    }
  }
  return out
}

// watchResponse makes a response of the drain close its connection when
// it is done, and restart the quiet period when it closes. Only responses
// in flight during a drain are watched, so the 'close' listener costs
// nothing in steady state.
const kState = Symbol('wattd.state')

function watchResponse (state, req, res) {
  closeAfter(req, res)
  res[kState] = state
  res.on('close', onResponseClose) // 'close' is emitted once per response
}

function onResponseClose () {
  try {
    // The connection may be idle now, and the quiet period starts over.
    responseDoneWhileDraining(this[kState])
  } catch (err) {
    warn('response close', err)
  }
}

// closeAfter makes Node close the connection once this response is sent,
// by the documented means of a "Connection: close" header. The header is
// kept against the app's own: a proxy that copies its upstream's
// "Connection: keep-alive" (node-http-proxy does), or a writeHead with one,
// would replace it, and Node would then keep the connection, which the
// drain could only close under a request the client had just sent.
function closeAfter (req, res) {
  if (res.headersSent || req.httpVersionMajor >= 2) return // h2 forbids it
  try {
    res.setHeader('Connection', 'close')
    keepClose(res)
  } catch {}
}

// keepClose makes res ignore the app's changes to its Connection header.
// writeHead and setHeaders go through these methods once a header is set,
// which closeAfter just did. Only a response of a drain or a shed gets
// them: no request pays for this otherwise.
function keepClose (res) {
  if (Object.hasOwn(res, 'setHeader')) return
  const { setHeader, appendHeader, removeHeader } = res
  res.setHeader = function (name, value) {
    return isConnection(name) ? this : setHeader.call(this, name, value)
  }
  if (typeof appendHeader === 'function') {
    res.appendHeader = function (name, value) {
      return isConnection(name) ? this : appendHeader.call(this, name, value)
    }
  }
  res.removeHeader = function (name) {
    if (!isConnection(name)) removeHeader.call(this, name)
  }
}

function isConnection (name) {
  return typeof name === 'string' && name.length === 10 && name.toLowerCase() === 'connection'
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
  answerAddress(server, () => unixSocketPath(fd) || `wattd-mesh-fd-${fd}`)
}

// reportRequestedAddress makes address() of an application's server that
// wattd serves on its mesh socket (an application that is not the
// entrypoint) say what it would say had the listen() been done as asked:
// code reads server.address().port to log it or to build a URL, and a
// socket's path there has no port (new URL('http://localhost:' + undefined)
// throws).
function reportRequestedAddress (server, req) {
  answerAddress(server, () => requestedAddress(req))
}

// answerAddress makes address() of a listening server whose own answer is
// null (it listens on a passed descriptor) give what find() says, found
// once.
function answerAddress (server, find) {
  const original = server.address
  let known
  server.address = function address () {
    const a = original.call(this)
    if (a !== null || !this.listening) return a
    if (known === undefined) known = find()
    return known
  }
}

// requestedAddress is what address() of a server listening as req asks
// would say: the path of a listen(path), else the host asked for (a name,
// such as localhost, as its IPv4 loopback address; none, as Node.js binds
// it, the IPv6 any address) and the port asked for (0 when none was).
function requestedAddress (req) {
  if (typeof req.path === 'string') return req.path
  const n = Number(req.port)
  const port = Number.isInteger(n) && n >= 0 && n <= 65535 ? n : 0
  const host = typeof req.host === 'string' ? req.host : ''
  if (net.isIPv4(host)) return { address: host, family: 'IPv4', port }
  if (net.isIPv6(host)) return { address: host, family: 'IPv6', port }
  if (host === '') return { address: '::', family: 'IPv6', port }
  return { address: '127.0.0.1', family: 'IPv4', port }
}

// socketAddress is what server.address() says of a server listening on
// fd: { address, family, port } for a TCP socket, found by its inode in
// /proc/net/tcp and tcp6, the path for a Unix socket; null when it cannot
// be told.
function socketAddress (fd) {
  if (fd === null || fd === undefined) return null
  try {
    const fs = require('node:fs')
    const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/self/fd/${fd}`))
    if (!m) return null
    for (const family of ['IPv4', 'IPv6']) {
      let text
      try {
        text = fs.readFileSync(family === 'IPv4' ? '/proc/net/tcp' : '/proc/net/tcp6', 'latin1')
      } catch {
        continue
      }
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      for (const line of text.split('\n')) {
        const f = line.trim().split(/\s+/)
        if (f.length < 10 || f[9] !== m[1]) continue
        const [hex, port] = f[1].split(':')
        const address = procAddress(hex, family)
        return address === null ? null : { address, family, port: Number.parseInt(port, 16) }
      }
    }
  } catch {
    return null
  }
  return unixSocketPath(fd)
}

// procAddress turns a /proc/net/tcp address (32-bit words in the host's
// byte order, in hex) into the text form Node.js gives.
function procAddress (hex, family) {
  if (!/^[0-9A-Fa-f]+$/.test(hex) || hex.length !== (family === 'IPv4' ? 8 : 32)) return null
  const bytes = Buffer.from(hex, 'hex')
  if (require('node:os').endianness() === 'LE') {
    for (let i = 0; i < bytes.length; i += 4) bytes.subarray(i, i + 4).reverse()
  }
  if (family === 'IPv4') return bytes.join('.')
  const groups = []
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16))
  return new net.SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address
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

// localPeer gives a mesh connection the peer address a loopback one has:
// a Unix socket has none, and req.socket.remoteAddress (Express's req.ip,
// Fastify's request.ip and its request log) would be undefined where Watt's
// in-process calls give 127.0.0.1. Every mesh caller is on this machine.
function localPeer (sock) {
  Object.defineProperty(sock, 'remoteAddress', { value: '127.0.0.1', configurable: true, enumerable: true })
  Object.defineProperty(sock, 'remoteFamily', { value: 'IPv4', configurable: true, enumerable: true })
}

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
  mesh.prependListener('connection', localPeer)
  nativeClose.set(mesh, mesh.close)
  reportSocketPath(mesh, fd)
  mesh.on('error', (err) => {
    warn('mesh listener', err)
    finish(false)
  })
  // Unref'd: the app's own server decides whether the process stays up.
  mesh.unref()
  try {
    nativeListen.call(mesh, { fd }, LISTEN_BACKLOG, () => finish(true))
  } catch (err) {
    warn('mesh listener', err)
    finish(false)
  }
}

// ---- shed ------------------------------------------------------------------

// A shed ends each connection after its first response that begins at
// least a random time within SHED_SPREAD_MS after the shed: all at once,
// half the clients of a worker would land together on one that has just
// started and serves its first requests slowly (its code not yet
// compiled). Short, though: until they have moved, the worker that sheds
// carries them all, and loses them all if it dies too (measured in the
// bench's crash scenario, a worker dying every 0.5 s: 0.57-0.59 of
// node:cluster's failed requests with no spread, 0.71-0.79 with 250 ms,
// 0.81-1.03 with 1 s, and no difference in p99 that the runs could show).
const SHED_SPREAD_MS = 250
// How long a shed waits for the connections it ends to carry a request:
// one idle longer than that stays, as an idle one costs nothing.
const SHED_MS = 10000

// startShed ends each client connection open now after one of its next
// responses (see SHED_SPREAD_MS), as wattd asks (ipc.TypeShed) when a slot
// that new connections were steered around serves again: the clients
// reconnect and the kernel spreads them over every worker's socket. The
// response says "Connection: close", through the request hook, which is
// attached for the shed only and taken off after it. Mesh connections
// (Unix sockets) and HTTP/2 are left alone, as are connections opened
// after the shed.
function startShed (state) {
  if (state.draining) return // the drain ends them all anyway
  const now = performance.now()
  const socks = new Map() // socket -> performance.now() from which it ends
  for (const set of [state.sockets, state.tlsSockets]) {
    for (const sock of set) {
      // A TLS server's TCP sockets carry no request of their own: its
      // TLS sockets do (see adopt).
      if (set === state.sockets && isSecure(sock.server)) continue
      // HTTP/2 has no Connection: close to say (see above).
      if (sock.alpnProtocol === 'h2') continue
      if (typeof sock.remotePort === 'number' && !sock.destroyed) socks.set(sock, now + Math.random() * SHED_SPREAD_MS)
    }
  }
  if (socks.size === 0) return
  if (state.shedding === null) {
    state.shedding = socks
    for (const server of state.hookable) attachRequestHook(server)
  } else {
    for (const [sock, from] of socks) state.shedding.set(sock, from)
    clearTimeout(state.shedTimer)
  }
  state.shedTimer = setTimeout(guard('shed', () => endShed(state)), SHED_MS)
  state.shedTimer.unref()
}

// shedRequest makes req's response end its connection if the shed is to
// end that connection by now.
function shedRequest (state, req, res) {
  const from = state.shedding.get(req.socket)
  if (from === undefined || performance.now() < from) return
  closeAfter(req, res)
  unshed(state, req.socket)
}

// unshed takes sock out of the shed, which ends with its last connection.
function unshed (state, sock) {
  if (state.shedding !== null && state.shedding.delete(sock) && state.shedding.size === 0) endShed(state)
}

// endShed takes the request hook off again unless a drain or a feature
// still needs it, so that requests cost the preload nothing once more.
function endShed (state) {
  if (state.shedding === null) return
  state.shedding = null
  clearTimeout(state.shedTimer)
  state.shedTimer = null
  if (state.draining || state.requestHooks.length > 0) return
  for (const server of state.hookable) {
    if (!hooked.has(server)) continue
    hooked.delete(server)
    server.removeListener('request', onRequestHook)
  }
}

// ---- drain -----------------------------------------------------------------

function startDrain (state, timeoutMs) {
  if (state.draining) return
  state.draining = true
  writeCompileCache()
  const timeout = typeof timeoutMs === 'number' && timeoutMs > 0 ? timeoutMs : DRAIN_TIMEOUT_MS
  state.quietMs = Math.min(DRAIN_QUIET_MS, timeout / 4)
  state.lastDone = performance.now()
  state.quietUntil = state.lastDone + timeout / 2
  holdUntilSigterm(state)
  // From now on every request is watched; those already in flight are
  // found on their connections.
  for (const res of inFlight(state)) watchResponse(state, res.req, res)
  for (const server of state.hookable) {
    attachRequestHook(server)
    refuseUpgrades(server)
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

// refuseUpgrades answers the upgrades and CONNECT tunnels asked for during
// the drain (only a kept-alive connection can still ask one) with 503 and
// "Connection: close" instead of handing them to the app. A 101 (or a
// tunnel's 200) cannot close its connection: the WebSocket or tunnel it
// opens would hold the worker to the end of the drain timeout and then be
// cut without a close frame, while a refused client connects again, to a
// worker that stays.
const UPGRADE_REFUSAL_BODY = 'this worker is stopping; connect again\n'
const UPGRADE_REFUSAL = 'HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 0\r\n' +
  `Content-Type: text/plain\r\nContent-Length: ${UPGRADE_REFUSAL_BODY.length}\r\n\r\n${UPGRADE_REFUSAL_BODY}`

function refuseUpgrades (server) {
  for (const event of ['upgrade', 'connect']) {
    if (server.listenerCount(event) === 0) continue
    server.removeAllListeners(event)
    server.on(event, refuseUpgrade)
  }
}

function refuseUpgrade (req, sock) {
  try {
    sock.end(UPGRADE_REFUSAL)
  } catch (err) {
    warn('refusing an upgrade', err)
    sock.destroy()
  }
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
  // The app's own close (appmodel.cjs) runs before wattd hears "drained",
  // since SIGTERM follows it; it bounds itself by the drain timeout.
  const before = state.beforeDrained
  if (typeof before !== 'function') {
    send(state, { type: 'drained' })
    return
  }
  Promise.resolve().then(before).catch((err) => warn('before drained', err))
    .finally(() => send(state, { type: 'drained' }))
}

module.exports = { patchListen, startDrain, startShed, holdUntilSigterm, sendReady, adopt }
