// The module compile cache. wattd sets NODE_COMPILE_CACHE for an application
// whose compileCache is on, and Node.js (22.1 and later) then reuses the code
// V8 compiled for each unchanged module at the next start. Node.js writes
// what it compiled when the process exits normally, but a worker ends by
// SIGTERM after its drain, or dies: so the preload writes it itself, where
// Node.js lets it (module.flushCompileCache, 22.10 and later): once the app
// is loaded (ready, or standby), once more a while later for the modules an
// app loads on first use, and when a drain begins. A write skips modules
// whose cache on disk is already the same, so the later ones cost little.
'use strict'

const { warn } = require('./base.cjs')

// How long after the app is loaded the cache is written again.
const LATER_MS = 30000

let flush = null // module.flushCompileCache while the cache is on
let loaded = false

// startCompileCache finds out whether Node.js is using a compile cache
// that the preload can write.
function startCompileCache () {
  if (!process.env.NODE_COMPILE_CACHE) return
  try {
    const m = require('node:module')
    if (typeof m.flushCompileCache !== 'function' || typeof m.getCompileCacheDir !== 'function') return
    if (m.getCompileCacheDir() === undefined) return // off: NODE_DISABLE_COMPILE_CACHE, or it failed
    flush = m.flushCompileCache
  } catch (err) {
    warn('compile cache', err)
  }
}

function writeCompileCache () {
  if (flush === null) return
  try {
    flush()
  } catch (err) {
    warn('compile cache', err)
  }
}

// appLoaded writes the cache once the app's modules are loaded, after the
// message that says so has gone out, and again LATER_MS on.
function appLoaded () {
  if (flush === null || loaded) return
  loaded = true
  setImmediate(writeCompileCache).unref()
  setTimeout(writeCompileCache, LATER_MS).unref()
}

module.exports = { startCompileCache, appLoaded, writeCompileCache }
