'use strict'
// An app whose worker thread is given the process's environment as it was
// at exec: the preload deleted LISTEN_PID, WATTD_CONTROL_FD and the rest
// from process.env before this code ran, but /proc/self/environ still has
// them. The preload runs in every thread (--require applies to each) and
// must do nothing in this one: the control channel and the sockets belong
// to the main thread, and LISTEN_PID names this very process.
const fs = require('node:fs')
const http = require('node:http')
const { Worker } = require('node:worker_threads')

const env = {}
for (const kv of fs.readFileSync('/proc/self/environ', 'latin1').split('\0')) {
  const i = kv.indexOf('=')
  if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1)
}

const code = `
const { parentPort } = require('node:worker_threads')
parentPort.postMessage({
  platformatic: typeof globalThis.platformatic,
  controlFd: process.env.WATTD_CONTROL_FD,
  listenPid: process.env.LISTEN_PID
})
`

const server = http.createServer((req, res) => res.end('main thread'))
server.listen(3000, () => {
  const worker = new Worker(code, { eval: true, env })
  worker.once('message', (m) => {
    process.stdout.write(JSON.stringify({ event: 'thread', ...m, pid: String(process.pid), mainPlatformatic: typeof globalThis.platformatic }) + '\n')
  })
  worker.once('error', (err) => {
    process.stdout.write(JSON.stringify({ event: 'thread', error: String(err) }) + '\n')
  })
})
