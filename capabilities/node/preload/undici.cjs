// Mesh for the npm "undici" package.
//
// undici (request, fetch, stream, Client, Pool, Agent, and whatever global
// dispatcher the app sets) does not go through node:http: each of its
// connections is made by its connector with net.connect({host, port}). That
// call is the one point every undici version (6.x and 7.x, and the copy
// bundled in Node) has in common, whether the request came through the
// global dispatcher (Symbol.for('undici.globalDispatcher.1')) or a
// Pool/Client the app made for http://<app>.plt.local. So net.connect and
// net.createConnection are wrapped: a connection to a *.plt.local host is
// made to a worker of that app over its Unix socket instead, and undici
// speaks HTTP/1.1 on it as it would on TCP (Host header and all).
//
// The cost for other hosts is one test of the host name per new connection,
// never per request; node:http is not affected at all, as http.Agent took
// its own reference to net.createConnection when it was loaded.
//
// Routing follows mesh-client.cjs: endpoints round-robin from the table, a
// connection refused by one endpoint tries the next before undici sees it
// (nothing was sent yet), an app with no ready worker (or whose endpoints
// all refuse) goes to wattd's mesh proxy, which answers 503 with the
// reason, and an unknown app fails like a failed DNS lookup (ENOTFOUND)
// with a message naming the app and the known ones. A connection made
// before the table has come waits for it (whenTable). The table's timeoutMs
// is not applied to undici: its own headersTimeout and bodyTimeout are.
'use strict'

const net = require('node:net')
const { warn, guard } = require('./base.cjs')
const { MESH_HOST, appOf, pick, whenTable, notFound } = require('./mesh-client.cjs')

// meshHost returns the host of a net.connect call that names a *.plt.local
// host over TCP, or null. It looks at as little as it can: every TCP client
// of the process passes here once per connection.
function meshHost (args) {
  const a = args[0]
  let host
  if (a !== null && typeof a === 'object') {
    if (a.path != null) return null // a Unix socket: not ours
    host = a.host
  } else if (typeof a === 'number' || typeof a === 'string') {
    host = args[1]
  } else {
    return null
  }
  if (typeof host !== 'string' || !MESH_HOST.test(host)) return null
  if (typeof a === 'string' && !/^\d+$/.test(a)) return null // connect(path)
  return host
}

// patchUndici wraps net.connect and net.createConnection (the same function
// under two names) for mesh hosts.
function patchUndici (mesh) {
  const original = net.connect
  function connect (...args) {
    let host = null
    try {
      host = meshHost(args)
    } catch (err) {
      warn('mesh connect', err)
    }
    if (host === null) return Reflect.apply(original, this, args)
    const opts = args[0] !== null && typeof args[0] === 'object' ? args[0] : {}
    const cb = typeof args[args.length - 1] === 'function' ? args[args.length - 1] : null
    return meshSocket(mesh, host, opts, cb)
  }
  Object.defineProperty(connect, 'length', { value: original.length })
  net.connect = connect
  net.createConnection = connect
  try {
    require('node:module').syncBuiltinESMExports()
  } catch {}
}

// meshSocket returns an unconnected socket at once, as net.connect does,
// and connects it to an endpoint of the host's app once the table allows.
//
// A connect that fails destroys a net.Socket and emits 'error' then
// 'close' in one tick. While the socket is still connecting, those two are
// kept from the caller and the same socket is connected again to the next
// endpoint (Socket#connect revives a destroyed socket); the caller sees only
// the outcome: 'connect', or the error of the last try.
function meshSocket (mesh, host, opts, cb) {
  const sockOpts = {}
  if (opts.allowHalfOpen !== undefined) sockOpts.allowHalfOpen = opts.allowHalfOpen
  if (opts.highWaterMark !== undefined) sockOpts.highWaterMark = opts.highWaterMark
  const sock = new net.Socket(sockOpts)
  if (cb !== null) sock.once('connect', cb)
  if (opts.timeout) sock.setTimeout(opts.timeout)
  const appId = appOf(host)
  const tried = []
  let viaProxy = false
  let held = null // the error of a failed try, until its 'close' has passed

  const emit = sock.emit
  sock.emit = function (name) {
    if (name === 'connect') {
      delete sock.emit // connected: the socket is the caller's from now on
    } else if (held !== null) {
      if (name === 'close') {
        const err = held
        held = null
        process.nextTick(guard('mesh connect', next), err)
      }
      return false
    } else if (name === 'error' && hasNext()) {
      held = arguments[1]
      return true
    }
    return Reflect.apply(emit, this, arguments)
  }

  // hasNext tells whether a failed try can be followed by another.
  const hasNext = () => {
    const t = mesh.table
    const app = t !== null ? t.apps.get(appId) : undefined
    if (app === undefined) return false
    if (app.endpoints.some((ep) => !tried.includes(ep))) return true
    return !viaProxy && t.proxy !== null
  }

  const next = (lastErr) => {
    if (sock.destroyed && lastErr === null) return // the caller gave up while it waited for the table
    const t = mesh.table
    const app = t !== null ? t.apps.get(appId) : undefined
    const ep = app !== undefined ? pick(app, tried) : null
    if (ep !== null) {
      tried.push(ep)
      sock.connect({ path: ep })
      return
    }
    if (app !== undefined && !viaProxy && t.proxy !== null) {
      // No ready worker, or none took the connection: wattd's proxy answers
      // with why. It reads the app from the Host header undici sends.
      viaProxy = true
      sock.connect({ path: t.proxy.path })
      return
    }
    delete sock.emit
    if (lastErr === null) {
      // From the event loop, as a failed DNS lookup comes back.
      const err = notFound(mesh, host, appId)
      setImmediate(guard('mesh connect', () => {
        if (!sock.destroyed) sock.destroy(err)
      }))
      return
    }
    const err = lastErr
    if (!sock.destroyed) {
      sock.destroy(err)
      return
    }
    // A try failed and its error was held, and then the table changed so
    // that no other try is left: the socket is already destroyed, so its
    // error and close are told now.
    sock.emit('error', err)
    sock.emit('close', true)
  }

  whenTable(mesh, () => next(null))
  return sock
}

module.exports = { patchUndici, meshHost }
