// Mesh client.
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
//     endpoint, while the table lists an endpoint not tried yet. A body
//     is never sent twice. http.request cannot do this, as its ClientRequest
//     belongs to the app: the app sees the error, as it would without wattd.
//   * No worker, unknown app. An app with no ready worker goes to wattd's
//     mesh proxy (an HTTP forward proxy, on its Unix socket) whose 503
//     names the app and why.
//     A name not in the table (or no table, or no proxy) fails like a
//     failed DNS lookup (ENOTFOUND), with a message naming the app and the
//     apps that do exist, and from the event loop, as a lookup does.
//   * Timeout. timeoutMs of the table (0: none) bounds every mesh request
//     up to its response head, as Watt's applicationTimeout does. After the
//     head, a fetch's body may go timeoutMs without data at most (as undici's
//     bodyTimeout bounds a fetch over TCP): a stream that keeps moving, an
//     SSE or a long download, runs as long as it moves, and one that stalls
//     errors with the TimeoutError. A body its reader holds back is not
//     stalled. An http.request's response stream is the app's to bound.
//
// The npm "undici" package does not use node:http: undici.cjs routes it.
//
// Known limits: https://*.plt.local is not routed (the mesh is plain HTTP);
// nor are requests made in worker threads (the preload acts in the main thread only); a
// Request object's body and FormData/Blob bodies are read whole before they
// are sent; "deflate" response bodies must be zlib-wrapped, as RFC 9110
// says; a Response made here has type "default", and its url and redirected
// are own properties, which response.clone() does not copy.

'use strict'

const net = require('node:net')
const { warn, guard } = require('./base.cjs')

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
    classes: null, // { MeshAgent, ProxyAgent, FailAgent }
    outgoing: null, // tracing.cjs's hooks for mesh calls, while it is on
    // fetchDone(job), when set (metrics.cjs's outgoing request durations),
    // is called once at the end of each mesh fetch: the end of its
    // response body, or its failure.
    fetchDone: null
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
  // Apps the configuration turns off, lower case -> id: a call to one says so.
  const disabled = new Map()
  if (Array.isArray(raw.disabled)) {
    for (const id of raw.disabled) if (typeof id === 'string') disabled.set(id.toLowerCase(), id)
  }
  mesh.table = { apps, proxy, disabled, timeoutMs: Number.isFinite(ms) && ms > 0 ? ms : 0 }
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

// appOf returns the app id of a mesh host name: all of what comes before
// .plt.local, lower case ("API.plt.local." -> "api"). "x.api.plt.local"
// names app "x.api", which does not exist (ids are one label), not "api".
function appOf (host) {
  let h = host.toLowerCase()
  if (h.endsWith('.')) h = h.slice(0, -1)
  return h.slice(0, h.length - MESH_SUFFIX_LEN)
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
    } else if (t.disabled.has(appId)) {
      why = `app "${t.disabled.get(appId)}" is disabled ("enabled": false in watt.json)`
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

  // FailAgent fails its request with err from the event loop, the way a
  // failed DNS lookup does.
  class FailAgent extends http.Agent {
    constructor (err) {
      super()
      this.error = err
    }

    createConnection (options, cb) {
      setImmediate(cb, this.error)
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
      setImmediate(cb, notFound(mesh, host, appId)) // as DNS would
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
    const span = mesh.outgoing === null ? null : mesh.outgoing.startHttp(args[0])
    const req = nativeRequest(args[0], args[1])
    if (span !== null) mesh.outgoing.endHttp(span, req)
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
    const span = mesh.outgoing === null ? null : mesh.outgoing.startHttp(args[0])
    const req = Reflect.construct(NativeClientRequest, args, target)
    if (span !== null) mesh.outgoing.endHttp(span, req)
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

// webClasses finds the fetch classes, at the first mesh fetch that needs
// them: loading them means loading Node's undici, tens of milliseconds
// that a worker start must not pay for an app that never fetches over the
// mesh. Not even their property descriptors are read before: on Node 20
// they are lazy getters, but on Node 24 lazy data properties, which
// reading the descriptor materialises. So the classes are those of the
// global scope at that first use.
function webClasses () {
  let classes = null
  return () => {
    if (classes === null) {
      classes = {}
      for (const k of ['Response', 'Headers', 'Request', 'ReadableStream']) {
        classes[k] = globalThis[k]
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

// A URL with credentials is left to the original fetch, which refuses it
// with its own TypeError, as over TCP and under Watt.
function meshURL (u) {
  return u.protocol === 'http:' && MESH_HOST.test(u.hostname) && u.username === '' && u.password === '' ? u : null
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
    span: null, // client span of tracing.cjs
    status: 0, // status of the response the fetch resolved with
    t0: mesh.fetchDone === null ? 0 : performance.now(), // its start, for fetchDone
    error: null, // what ended it, if it failed, for fetchDone
    metered: false, // fetchDone was called
    chunks: null, // buffered response body
    bodyEnd: null, // ends a streamed response body, see bodyStream
    bodyHeld: null // whether the body's reader holds it back, see bodyStream
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
  if (mesh.outgoing !== null) job.span = mesh.outgoing.startFetch(job)
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
      // From the event loop, as a failed DNS lookup comes back: a retry
      // loop without a delay then still lets the control channel bring
      // the table that names the app.
      setImmediate(failFetch, job, notFound(mesh, job.url.hostname, job.appId))
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
    // Each endpoint once: the table may have dropped the failed one
    // already (wattd takes a dead worker out at about the time its
    // connections break), so count what is left untried, not the table's
    // length.
    if (app !== undefined && app.endpoints.some((ep) => !tried.includes(ep))) {
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
  // From the head on, the timeout measures the body's silences.
  if (job.bodyEnd !== null && job.timer !== null) job.timer.refresh()
  if (job.bodyEnd === null) release(job)
  if (job.span !== null) job.mesh.outgoing.endFetch(job.span, job.status)
}

function release (job) {
  if (job.mesh.fetchDone !== null && !job.metered) {
    job.metered = true
    try {
      job.mesh.fetchDone(job)
    } catch {}
  }
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
  job.error = err
  settle(job)
  job.reject(new TypeError('fetch failed', { cause: err }))
}

function abortFetch (job) {
  const reason = job.signal.reason
  if (!job.done) {
    job.error = reason
    settle(job)
    job.reject(reason)
    if (job.req !== null) job.req.destroy()
  } else if (job.bodyEnd !== null) {
    job.bodyEnd(reason, true)
  }
}

function onFetchTimeout (job, ms) {
  try {
    if (job.done && job.bodyEnd !== null) {
      if (job.bodyHeld !== null && job.bodyHeld()) {
        job.timer.refresh() // the reader holds it back: not a stall
        return
      }
      job.timer = null
      job.bodyEnd(new DOMException(`mesh: app "${job.appId}" sent nothing of its response body for ${ms} ms (applicationTimeout)`, 'TimeoutError'), true)
      return
    }
    job.timer = null
    const err = new DOMException(timeoutMessage(job.appId, ms), 'TimeoutError')
    if (!job.done) {
      job.error = err
      settle(job)
      job.reject(err)
      if (job.req !== null) job.req.destroy()
    }
  } catch (err) {
    internalError(job, err)
  }
}

function timeoutMessage (appId, ms) {
  return `mesh: app "${appId}" did not answer within ${ms} ms (applicationTimeout)`
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
  job.status = status
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
    if (err !== null && job.error === null) job.error = err
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
  job.bodyHeld = () => src.isPaused()
  return new ReadableStream({
    start (c) {
      controller = c
      src.on('data', (chunk) => {
        if (ended) return
        if (job.timer !== null) job.timer.refresh()
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

// The rest is for undici.cjs, which routes the npm undici package the same way.
module.exports = { startMeshClient, setTable, MESH_HOST, appOf, pick, whenTable, notFound }
