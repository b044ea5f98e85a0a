// Watt's application model for the worker: the modules the config preloads,
// an entry module that exports a factory instead of listening, background
// apps (node.hasServer false), and the app's close() on stop.
//
// The entry stays node's main module, as `node <entry>` would run it, so an
// app that listens by itself (even behind `require.main === module`) is
// unchanged. What is added is what @platformatic/node does once the module
// has loaded:
//
//   * A factory. The module (its default export when it has one) exports
//     build() or create(), build first. When the app has not listened by
//     itself by the time its module finished loading, the factory is called
//     with no arguments and awaited, and what it returns is served: a Fastify
//     instance (ready(), then listen()), anything with listen() (an Express
//     or Koa app, an http.Server), or a bare request listener (served by an
//     http.Server made for it). Its listen() is redirected like any other,
//     so the app lands on the worker's sockets.
//   * Background apps. node.hasServer false, a module exporting
//     hasServer = false, or a factory result with isBackgroundApplication =
//     true: the worker is ready as soon as the module (and factory) loaded,
//     nothing is redirected, its sockets answer 503, and the process is held
//     up (as Watt's worker thread is) until wattd stops it.
//   * close(). On stop, 'close' is emitted on state.events (when the globals
//     made it), then the module's close() export (or the background app's own
//     close(app)) is called, then a factory's Fastify app is closed, so its
//     onClose hooks run. This runs once the drain has no connection left, or
//     at DRAIN_CLOSE_SHARE of the drain timeout if requests still run, and
//     "drained" waits for it, within the drain timeout.
//   * A module that ends the process without having listened is named on
//     stderr with what it exports, instead of a silent exit 0.
'use strict'

const Module = require('node:module')
const path = require('node:path')
const { pathToFileURL } = require('node:url')
const { LISTEN_BACKLOG, warn, guard } = require('./base.cjs')

// Share of the drain timeout after which close() runs even while requests
// are still in flight, so that it always runs before wattd's SIGTERM.
const DRAIN_CLOSE_SHARE = 0.75

// readAppConfig takes the settings of the application model from the app
// info file wattd writes (ipc.AppInfo, read by globals.cjs's readAppInfo);
// {} means every Watt default.
function readAppConfig (info) {
  const cfg = { hasServer: true, preload: [], basePath: null }
  if (!info || typeof info !== 'object') return cfg
  if (info.noServer === true) cfg.hasServer = false
  if (Array.isArray(info.preload)) cfg.preload = info.preload.filter((p) => typeof p === 'string')
  if (typeof info.basePath === 'string' && info.basePath !== '') cfg.basePath = info.basePath
  return cfg
}

// info says how the app was started, as a structured line of the worker's
// (info level, no caller): written as plain text it read as the app's own
// stdout.
function info (msg) {
  try {
    process.stdout.write(JSON.stringify({ level: 30, time: Date.now(), msg: `wattd preload: ${msg}` }) + '\n')
  } catch {}
}

// fail reports why the app cannot start and ends the worker, as a failed
// start does under Watt. The exit code is 1 so wattd's restart policy treats
// it as the crash it is.
function fail (msg, err) {
  try {
    const detail = err === undefined ? '' : '\n' + (err && err.stack ? err.stack : String(err))
    process.stderr.write(`wattd preload: ${msg}${detail}\n`)
  } catch {}
  process.exit(1)
}

// startAppModel takes over the start of the main module. fds are the passed
// sockets; hooks.sendReady reports readiness (listen.cjs).
function startAppModel (state, cfg, fds, hooks) {
  state.appModel = {
    cfg,
    entry: null, // absolute path of the main module
    module: null, // what the module exports (default export preferred)
    factory: null, // 'build' or 'create' when one was called
    app: null, // what the factory returned
    background: !cfg.hasServer,
    fds, // the passed sockets, for a background app found out late
    close: null, // the app's close function, if any
    closing: null // promise of the close sequence once started
  }
  if (!cfg.hasServer) serveNothing(state, fds)
  patchRunMain(state, cfg, hooks)
  wrapDrain(state)
  process.once('exit', guard('exit', (code) => onExit(state, code)))
}

// patchRunMain wraps Module.runMain, the documented seam that --require
// preloads have to run code around the main module: the configured preloads
// are imported first, in order (Watt awaits each import() before the app),
// and once the main module has loaded, its exports are looked at.
function patchRunMain (state, cfg, hooks) {
  const original = Module.runMain
  Module.runMain = function runMain (main = process.argv[1], ...rest) {
    Module.runMain = original
    const self = this
    const run = () => {
      original.call(self, main, ...rest)
      afterMain(state, main, hooks)
    }
    if (cfg.preload.length === 0) return run()
    importInOrder(cfg.preload).then(
      () => {
        try {
          run()
        } catch (err) {
          // What node itself does with an exception of the main module.
          process.nextTick(() => { throw err })
        }
      },
      (err) => fail(`preload module ${err.preloadPath} failed to load`, err.cause)
    )
  }
}

async function importInOrder (files) {
  for (const file of files) {
    try {
      await import(pathToFileURL(file).href)
    } catch (cause) {
      const err = new Error('preload failed')
      err.preloadPath = file
      err.cause = cause
      throw err
    }
  }
}

// afterMain runs right after node started the main module. A CommonJS main
// loaded synchronously is done by now. Otherwise node loads the main through
// its ES module loader (an ES module, or any entry once an --import flag is
// given), asynchronously:
//
//   * a CommonJS main is done when process.mainModule is loaded. Importing
//     it ourselves could load it first, and then not as the main module
//     (require.main === module would be false), so it is polled instead;
//   * an ES module main is done when import() of its URL settles, which
//     joins the load node started rather than loading it again. (With an
//     --import flag, node starts that load only after the flag's modules, and
//     an import() of ours that came first would make import.meta.main false.)
function afterMain (state, main, hooks) {
  const model = state.appModel
  const mm = process.mainModule
  if (mm && mm.loaded) {
    model.entry = mm.filename
    setImmediate(guard('app model', () => onLoaded(state, mm.exports, hooks)))
    return
  }
  let file
  try {
    file = require('node:fs').realpathSync(path.resolve(main))
  } catch {
    return // node reports a missing main module itself
  }
  model.entry = file
  if (isCommonJS(file)) {
    const poll = setInterval(guard('app model', () => {
      const m = process.mainModule
      if (!m || !m.loaded) return
      clearInterval(poll)
      onLoaded(state, m.exports, hooks)
    }), MAIN_POLL_MS)
    // Ours must not be what keeps the process up once the app is done.
    process.once('beforeExit', () => clearInterval(poll))
    return
  }
  setImmediate(() => {
    import(pathToFileURL(file).href).then(
      (ns) => guard('app model', onLoaded)(state, ns, hooks),
      () => {} // node reports the main module's own failure
    )
  })
}

// How often an asynchronously loaded CommonJS main is looked at.
const MAIN_POLL_MS = 10

// isCommonJS tells how node will load file: .cjs and .mjs say so, a .js
// follows the nearest package.json "type", and a .js in a CommonJS package
// that does not compile as CommonJS is an ES module by node's syntax
// detection.
function isCommonJS (file) {
  const fs = require('node:fs')
  if (file.endsWith('.cjs')) return true
  if (file.endsWith('.mjs')) return false
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    let raw
    try {
      raw = fs.readFileSync(path.join(dir, 'package.json'), 'utf8')
    } catch {
      if (path.dirname(dir) === dir) break
      continue
    }
    try {
      if (JSON.parse(raw).type === 'module') return false
    } catch {}
    break
  }
  try {
    const vm = require('node:vm')
    vm.compileFunction(fs.readFileSync(file, 'utf8'), ['exports', 'require', 'module', '__filename', '__dirname'])
    return true
  } catch {
    return false
  }
}

function pickModule (exp) {
  if (exp === null || exp === undefined) return exp
  // As @platformatic/node: the default export when there is one.
  return exp.default || exp
}

function onLoaded (state, exports, hooks) {
  const model = state.appModel
  const mod = pickModule(exports)
  model.module = mod
  if (mod && typeof mod.close === 'function') model.close = () => mod.close()
  if (mod && mod.hasServer === false) model.background = true
  const factory = mod ? ['build', 'create'].find((f) => typeof mod[f] === 'function') : undefined
  const name = path.basename(model.entry || 'the entry module')

  if (factory && state.primary) {
    info(`${name} exports ${factory}() but already listened by itself; not calling ${factory}()`)
    return
  }
  if (factory) {
    model.factory = factory
    runFactory(state, mod, factory, name, hooks).catch((err) =>
      fail(`${name}: the app returned by ${factory}() could not be started`, err))
    return
  }
  if (model.background) becomeBackground(state, hooks)
}

async function runFactory (state, mod, factory, name, hooks) {
  const model = state.appModel
  let app
  try {
    app = await mod[factory]()
  } catch (err) {
    fail(`${name}: ${factory}() failed`, err)
    return
  }
  model.app = app
  if (app && app.isBackgroundApplication === true) {
    model.background = true
    if (typeof app.close === 'function') model.close = () => app.close(app)
  }
  if (model.background) {
    info(`${name} exports ${factory}(); called it, and runs as a background app (no server)`)
    becomeBackground(state, hooks)
    return
  }
  if (state.primary) {
    // The factory listened by itself: that server is the app.
    info(`${name} exports ${factory}(), which listened by itself; serving that server`)
    return
  }
  const kind = await listenApp(app)
  info(`${name} exports ${factory}(); started the ${kind} it returned on wattd's socket`)
}

// listenApp listens the factory's result as @platformatic/node does; the
// port asked for does not matter, the preload redirects the listen().
async function listenApp (app) {
  if (isFastify(app)) {
    await app.ready()
    // 127.0.0.1 rather than Fastify's "localhost", which would make it bind
    // once per address of localhost.
    await app.listen({ port: 0, host: '127.0.0.1' })
    return 'Fastify app'
  }
  const net = require('node:net')
  if (app instanceof net.Server) {
    if (!app.listening) await listenServer(app, (cb) => app.listen(0, cb))
    return 'server'
  }
  if (app !== null && (typeof app === 'object' || typeof app === 'function') && typeof app.listen === 'function') {
    // Express and Koa: listen() makes the http.Server.
    await listenServer(null, (cb) => app.listen(0, cb))
    return typeof app === 'function' ? 'app (Express style)' : 'app'
  }
  if (typeof app === 'function') {
    const server = require('node:http').createServer(app)
    await listenServer(server, (cb) => server.listen(0, cb))
    return 'request listener'
  }
  throw new Error(`it returned ${describe(app)}, which has no listen(); return an http.Server, a Fastify, Express or Koa app, or a (req, res) function, or set node.hasServer to false for an app without a server`)
}

// listenServer calls start(cb) and settles when cb runs or the server it
// returned reports an error.
function listenServer (server, start) {
  return new Promise((resolve, reject) => {
    let srv = server
    // Express 5 passes a listen error to the callback too.
    const ret = start(function (err) {
      if (err instanceof Error) reject(err)
      else resolve(srv || this)
    })
    if (!srv && ret && typeof ret.once === 'function') srv = ret
    if (srv && typeof srv.once === 'function') srv.once('error', reject)
  })
}

// As @platformatic/node recognises a Fastify instance.
function isFastify (app) {
  if (!app || (typeof app !== 'object' && typeof app !== 'function')) return false
  return Object.getOwnPropertySymbols(app).some((s) => s.description === 'fastify.state')
}

function describe (v) {
  if (v === null) return 'null'
  if (v === undefined) return 'undefined'
  if (typeof v === 'object') return `an object (${v.constructor && v.constructor.name ? v.constructor.name : 'Object'})`
  return `a ${typeof v}`
}

// becomeBackground reports the worker ready with no listener and holds the
// process up, as a Watt worker thread stays up, until wattd stops it.
function becomeBackground (state, hooks) {
  const model = state.appModel
  if (state.standby !== null && !state.standby.promoted) {
    // It has no listen() to hold: promoted, it would serve nothing on
    // the slot's sockets. wattd's standby pool stops after a few of these.
    fail('this app runs in the background (no server), found out from its module: it cannot be a standby worker; remove "standby" from its configuration')
  }
  // Found out from the module (hasServer = false, a factory's
  // isBackgroundApplication) rather than the configuration, which had
  // serveNothing answer at the start: its sockets are still listed in the
  // mesh, and nothing would ever accept on them.
  if (model.cfg.hasServer && state.primary === null) serveNothing(state, model.fds)
  model.background = true
  if (state.control) state.control.ref()
  hooks.sendReady(state, [])
}

// serveNothing answers on the sockets a background app does not use, so a
// request that reaches one is told why instead of hanging.
function serveNothing (state, fds) {
  const http = require('node:http')
  for (const name of Object.keys(fds)) {
    try {
      const srv = http.createServer((req, res) => {
        res.statusCode = 503
        res.setHeader('content-type', 'text/plain; charset=utf-8')
        res.setHeader('connection', 'close')
        res.end('this application runs in the background (no server) and serves no HTTP requests\n')
      })
      srv.on('error', (err) => warn(`background app's ${name} socket`, err))
      srv.listen({ fd: fds[name] }, LISTEN_BACKLOG)
      srv.unref()
      state.servers.add(srv)
    } catch (err) {
      warn(`cannot answer on the ${name} socket`, err)
    }
  }
}

// wrapDrain arms the close sequence when a drain starts, for the case where
// connections outlive most of the drain; the usual trigger is
// state.beforeDrained, called by listen.cjs when no connection is left.
function wrapDrain (state) {
  const prev = state.handlers.get('drain')
  state.handlers.set('drain', (msg) => {
    const timeout = typeof msg.timeoutMs === 'number' && msg.timeoutMs > 0 ? msg.timeoutMs : 10000
    state.appModel.deadline = performance.now() + timeout
    if (prev) prev(msg)
    const t = setTimeout(guard('close', () => runClose(state)), timeout * DRAIN_CLOSE_SHARE)
    t.unref()
  })
  state.beforeDrained = () => runClose(state)
}

// runClose runs the app's close sequence once and settles when it is done
// or its time (what is left of the drain) is up.
function runClose (state) {
  const model = state.appModel
  if (model.closing) return model.closing
  const left = model.deadline ? Math.max(model.deadline - performance.now() - 250, 500) : 10000
  const steps = async () => {
    const events = state.events
    if (events && typeof events.emit === 'function') events.emit('close')
    if (model.close) await model.close()
    if (model.factory && isFastify(model.app)) await model.app.close()
  }
  let timer
  const bound = new Promise((resolve) => {
    timer = setTimeout(() => {
      warn(`the app's close did not finish within ${Math.round(left)} ms; going on with the stop`)
      resolve()
    }, left)
  })
  model.closing = Promise.race([
    steps().catch((err) => warn("the app's close failed", err)),
    bound
  ]).finally(() => {
    clearTimeout(timer)
    // A background app was held up for wattd; let it end now.
    if (model.background && state.control) state.control.unref()
  })
  return model.closing
}

// onExit names a module that let the process end before it was ready:
// without a word, wattd would only see "exit status 0" over and over.
function onExit (state, code) {
  if (code !== 0 || state.readySent || state.draining) return
  const model = state.appModel
  const name = model.entry ? path.basename(model.entry) : 'the entry module'
  const mod = model.module
  const keys = mod && (typeof mod === 'object' || typeof mod === 'function') ? Object.keys(mod) : []
  const exp = keys.length ? `it exports ${keys.slice(0, 8).join(', ')}${keys.length > 8 ? ', …' : ''}` : 'it exports nothing'
  process.stderr.write(`wattd preload: ${name} finished loading and the process is exiting without having listened (${exp}). ` +
    'A server app must call listen() or export build()/create() returning its server; an app without a server needs node.hasServer false.\n')
}

module.exports = { startAppModel, readAppConfig, isFastify, DRAIN_CLOSE_SHARE }
