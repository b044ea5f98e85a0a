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
//   * Standby (WATTD_STANDBY=1). The worker is given every slot's sockets
//     ("http.N", "mesh.N") and holds the app's first listen(): it says
//     "standby" and serves nothing until wattd's "promote {worker}", when it
//     closes the other slots' copies and listens on that slot's (listen.cjs).
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
// The modules: base.cjs (state, warn/guard), control.cjs (channel, stats,
// dispatch of wattd's messages to the handlers registered in
// state.handlers), listen.cjs (listen redirection, entrypoint mesh, drain),
// mesh-client.cjs (*.plt.local for node:http and fetch), messaging.cjs
// (platformatic.messaging between applications, routed by wattd), logger.cjs
// and globals.cjs (globalThis.platformatic, Watt's runtime API for apps),
// appmodel.cjs (Watt's application model: preload modules, build()/create()
// factories, background apps, the app's close() on stop), compilecache.cjs
// (writes Node.js's module compile cache when compileCache is on), undici.cjs (*.plt.local
// for the npm undici package, at net.connect), requests.cjs (the per-request
// hooks of optional features), metrics.cjs (request durations, event-loop
// lag and GC, when wattd's metrics are on), tracing.cjs and tracecontext.cjs
// (request ids, W3C trace context, spans; per request only while turned on),
// diag.cjs (the heap snapshots wattd asks for).
//
// Rules these modules keep: only node: builtins; nothing it does may throw into
// the app (every callback is guarded); none of its handles keeps the process
// alive on its own (control socket, timers, the mesh listener and idle mesh
// connections are unref'd), the exceptions being the hold just mentioned and
// the bounded wait of an app's early mesh request for the table (whenTable);
// and when the process was not started by wattd for this very pid it does
// nothing at all.
'use strict'

// applySizes sets Buffer.poolSize and the byte streams' default
// highWaterMark from the app's health keys (bufferPoolSize,
// defaultHighWaterMark), before the app loads, as Watt sets them in its
// workers. Unset, Node.js's own stay.
function applySizes (info) {
  if (info.bufferPoolSize > 0) Buffer.poolSize = info.bufferPoolSize
  if (info.defaultHighWaterMark > 0) {
    const stream = require('node:stream')
    if (typeof stream.setDefaultHighWaterMark === 'function') stream.setDefaultHighWaterMark(false, info.defaultHighWaterMark)
  }
}

// isMainThread tells the process's main thread from the app's worker
// threads without loading node:worker_threads, which alone takes about 2 ms
// of every worker's start, for this one question. Node.js (20 to 24 at
// least) deletes process._debugProcess when it sets up any thread but the
// main one. Where the property is missing, the module answers, so a Node.js
// that drops it everywhere only costs the 2 ms again. Were a thread to keep
// it, the environment check in main would still stop it, unless the app
// handed the thread the variables that check looks for (they are deleted
// from process.env before the app's code runs).
function isMainThread () {
  if (typeof process._debugProcess === 'function') return true
  return require('node:worker_threads').isMainThread
}

// Everything lives in a function so nothing leaks into the module scope of
// the app, and one try/catch can make the whole preload fail safe.
function main () {
  // --require preloads also run in worker threads; the sockets belong to
  // the main thread only.
  if (!isMainThread()) return

  const env = process.env
  const listenPid = env.LISTEN_PID
  const parentPid = env.WATTD_PARENT_PID
  // LISTEN_PID names the process the fds are meant for (wattd's exec
  // helper sets it); a worker wattd starts without the helper has
  // WATTD_PARENT_PID instead, wattd's pid, which must be its parent's. Any
  // other value means we inherited the variables from a parent that owns
  // the sockets: touch nothing, not even the environment.
  if (listenPid !== undefined && listenPid !== String(process.pid)) return
  if (listenPid === undefined && parentPid !== undefined && parentPid !== String(process.ppid)) return
  const ours = listenPid !== undefined || parentPid !== undefined
  if (env.WATTD_CONTROL_FD === undefined && !ours) return // not under wattd

  const config = {
    listenFds: env.LISTEN_FDS,
    listenNames: env.LISTEN_FDNAMES,
    controlFd: env.WATTD_CONTROL_FD,
    statsMs: env.WATTD_STATS_INTERVAL_MS,
    standby: env.WATTD_STANDBY === '1'
  }
  // Remove what only this process may use, so programs the app spawns do
  // not mistake our sockets for theirs. The informational variables
  // (WATTD_APP_ID, WATTD_WORKER_ID, WATTD_ENTRYPOINT, WATTD_MESH_DIR,
  // WATTD_APP_INFO) stay:
  // apps read them to know who they are and to reach each other.
  for (const k of ['LISTEN_FDS', 'LISTEN_FDNAMES', 'LISTEN_PID', 'WATTD_PARENT_PID', 'WATTD_CONTROL_FD',
    'WATTD_PROTOCOL', 'WATTD_STATS_INTERVAL_MS', 'WATTD_STANDBY']) {
    delete env[k]
  }

  const { newState, parseListenFds, toInt, warn } = require('./base.cjs')
  require('./compilecache.cjs').startCompileCache()
  const { openControl, startStats, send } = require('./control.cjs')
  const { onDiagnose } = require('./diag.cjs')
  const { patchListen, startDrain, startShed, sendReady } = require('./listen.cjs')
  const { startMeshClient, setTable } = require('./mesh-client.cjs')
  const { startMessaging } = require('./messaging.cjs')
  const { startAppModel, readAppConfig } = require('./appmodel.cjs')
  const { installGlobals, readAppInfo } = require('./globals.cjs')
  const info = readAppInfo(env)
  const appConfig = readAppConfig(info)
  applySizes(info)

  let fds = ours ? parseListenFds(config.listenFds, config.listenNames) : {}
  const state = newState()
  if (config.standby && ours && config.controlFd !== undefined) {
    // A standby holds every slot's sockets by "http.N"/"mesh.N" and takes
    // one slot's when promoted (listen.cjs); until then it has none.
    // WATTD_STANDBY_WARMUP=0 in the app's environment turns the warm-up
    // off (warm.cjs).
    state.standby = { fds, held: null, promoted: false, warmup: env.WATTD_STANDBY_WARMUP !== '0', stopWarm: null }
    fds = {}
  }
  state.handlers.set('drain', (msg) => startDrain(state, msg.timeoutMs))
  state.handlers.set('shed', () => startShed(state))
  state.handlers.set('mesh', (msg) => { if (state.mesh !== null) setTable(state.mesh, msg.mesh) })
  state.handlers.set('diagnose', (msg) => onDiagnose(state, msg, send))
  if (config.controlFd !== undefined) openControl(state, toInt(config.controlFd))
  // A background app (node.hasServer false) listens for itself, if at all.
  if (appConfig.hasServer && (fds.http !== undefined || fds.mesh !== undefined || state.standby !== null)) patchListen(state, fds)
  // Before the app's servers exist, so its request hook is in place when
  // they are adopted.
  if (state.control && info.metrics === true) {
    try {
      require('./metrics.cjs').startMetrics(state, Array.isArray(info.requestLabels) ? info.requestLabels : [], info.clientMetrics === true)
    } catch (err) {
      warn('metrics disabled after an internal error', err)
    }
  }
  if (state.control && info.eventLoopDelay === true) {
    state.delay = require('./delay.cjs').startDelay()
  }
  startAppModel(state, appConfig, fds, { sendReady })
  if (state.control) startStats(state, toInt(config.statsMs) || 2000)
  // Before globalThis.platformatic is built, which hands apps state.messaging.
  if (state.control) {
    try {
      startMessaging(state)
    } catch (err) {
      warn('messaging disabled after an internal error', err)
    }
  }
  // The mesh table comes on the control channel: without it there is
  // nothing to route with, and nothing is patched.
  if (state.control) {
    try {
      startMeshClient(state)
      require('./undici.cjs').patchUndici(state.mesh)
      if (state.metrics !== null && state.metrics.client !== null) {
        const client = state.metrics.client
        state.mesh.fetchDone = (job) => client.meshDone(job)
      }
    } catch (err) {
      warn('mesh client disabled after an internal error', err)
    }
  }
  // After the mesh client, whose calls it traces; before the app loads.
  // Loaded only when the app info turns either feature on (tracing.cjs
  // does nothing otherwise): it needs node:crypto, whose loading alone
  // would add tens of milliseconds to every worker's start.
  if (isObject(info.tracing) || isObject(info.requestId)) {
    try {
      require('./tracing.cjs').startTracing(state, info)
    } catch (err) {
      warn('tracing and request ids disabled after an internal error', err)
    }
  }
  // Before the app loads: apps read globalThis.platformatic at once.
  try {
    installGlobals(state, info)
  } catch (err) {
    warn('globalThis.platformatic disabled after an internal error', err)
  }
}

function isObject (v) {
  return typeof v === 'object' && v !== null
}

try {
  main()
} catch (err) {
  // Whatever went wrong, the app itself must still start.
  try {
    process.stderr.write(`wattd preload: disabled after an internal error: ${err && err.message}\n`)
  } catch {}
}
