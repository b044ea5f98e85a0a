'use strict'

// The baseline wattd is compared with: a plain node:cluster primary, written
// the way people usually write one. It forks WORKERS workers (default 2)
// that all run the same app file as the wattd fixture, and re-forks a worker
// as soon as one exits. The primary owns the listening socket and hands
// connections to workers round-robin (the node default on Linux).
//
// Environment: PORT (listen port), WORKERS (worker count). Everything else,
// EXIT_AFTER_MS included, reaches the workers through the inherited env.

const cluster = require('node:cluster')
const path = require('node:path')

const workers = Math.max(1, Number(process.env.WORKERS) || 2)
// Keep the baseline on loopback, as wattd is (its watt.json says 127.0.0.1).
const workerEnv = { BENCH_HOST: '127.0.0.1' }

cluster.setupPrimary({
  exec: path.join(__dirname, '..', 'hello', 'app', 'index.js'),
  silent: false
})

let stopping = false

cluster.on('exit', () => {
  if (!stopping) cluster.fork(workerEnv)
})

for (let i = 0; i < workers; i++) cluster.fork(workerEnv)

function stop () {
  if (stopping) return
  stopping = true
  const live = Object.values(cluster.workers)
  if (live.length === 0) process.exit(0)
  // Workers die on SIGTERM by default; the primary leaves once all are gone
  // so that nothing outlives it. The timer bounds the wait in case a worker
  // ignores the signal.
  let left = live.length
  for (const w of live) {
    w.once('exit', () => { if (--left === 0) process.exit(0) })
    w.process.kill('SIGTERM')
  }
  setTimeout(() => {
    for (const w of Object.values(cluster.workers)) w.process.kill('SIGKILL')
    process.exit(1)
  }, 5000).unref()
}

process.on('SIGTERM', stop)
process.on('SIGINT', stop)
