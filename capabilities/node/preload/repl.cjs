'use strict'

// A REPL inside this worker (`wattd ctl repl`, `wattpm repl`): wattd
// listens on a Unix socket of its runtime directory and asks, with the
// diagnose kind "repl" (diag.cjs), this worker to connect to it; Node.js's
// own REPL then reads and writes that connection. What is typed is
// evaluated in this process, in a context of its own that starts with the
// process's globals (the app's included) and adds:
//
//   server       the app's HTTP server, when wattd gave it its socket
//   platformatic the runtime API (globalThis.platformatic), as under Watt
//   logger       its logger
//   config       the application's configuration, as platformatic.config
//
// The session ends with .exit (or Ctrl+D in a terminal), or when either
// end closes the connection; the worker goes on serving either way.

// openRepl connects to d.path and starts the REPL on the connection; it
// resolves once connected, so that the answer follows the connection.
function openRepl (state, d) {
  if (typeof d.path !== 'string' || d.path === '') throw new Error('no socket to open the REPL on')
  const net = require('node:net')
  return new Promise((resolve, reject) => {
    // Half open: the input's end (piped input that ran out) ends the
    // REPL, which still answers what it read before.
    const sock = net.connect({ path: d.path, allowHalfOpen: true })
    sock.once('error', reject)
    sock.once('connect', () => {
      sock.removeListener('error', reject)
      // The other end going away ends the session ('close'), no more.
      sock.on('error', () => {})
      try {
        startRepl(state, sock, d)
      } catch (err) {
        sock.destroy()
        reject(err)
        return
      }
      resolve()
    })
  })
}

function startRepl (state, sock, d) {
  const repl = require('node:repl')
  const terminal = d.terminal === true
  if (terminal) {
    // readline wraps and redraws lines by the output's width.
    sock.columns = Number.isInteger(d.columns) && d.columns > 0 ? d.columns : 80
  }
  // The REPL ends on .exit or Ctrl+D, or when wattd closes the
  // connection; nothing of the app keeps waiting for it.
  sock.unref()
  const server = repl.start({
    prompt: typeof d.prompt === 'string' && d.prompt !== '' ? d.prompt : '> ',
    input: sock,
    output: sock,
    terminal,
    useColors: terminal,
    useGlobal: false
  })
  const plt = globalThis.platformatic
  const extra = {
    server: state.primary !== null ? state.primary.server : undefined,
    platformatic: plt,
    logger: plt !== undefined ? plt.logger : undefined,
    config: plt !== undefined ? plt.config : undefined
  }
  const addExtra = (context) => {
    for (const [name, value] of Object.entries(extra)) {
      if (value === undefined) continue
      Object.defineProperty(context, name, { configurable: true, enumerable: false, writable: true, value })
    }
  }
  addExtra(server.context)
  server.on('reset', addExtra) // .clear makes a new context
  let closed = false
  server.on('exit', () => {
    closed = true
    sock.end()
  })
  sock.on('close', () => {
    if (!closed) {
      closed = true
      server.close()
    }
  })
}

module.exports = { openRepl }
