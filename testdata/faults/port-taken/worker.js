// A fronted worker (run it with the command capability) whose first start
// loses its $PORT to another program: it notes the port it was given in the
// file PORT_LOG, waits until something else listens there, then fails to
// listen (EADDRINUSE) a second later and exits 1. FAULT_ONCE names a file that marks the
// first start done; later starts just serve on $PORT.
'use strict'
const fs = require('node:fs')
const http = require('node:http')
const net = require('node:net')

const port = Number(process.env.PORT)
fs.appendFileSync(process.env.PORT_LOG, `${port}\n`)
const first = !fs.existsSync(process.env.FAULT_ONCE)
if (first) fs.writeFileSync(process.env.FAULT_ONCE, String(process.pid))

function serve () {
  const srv = http.createServer((req, res) => res.end(`port-worker ${process.pid} ${port}\n`))
  srv.on('error', (err) => {
    console.error(`cannot listen on ${port}: ${err.code}`)
    process.exit(1)
  })
  srv.listen(port, '127.0.0.1')
}

process.on('SIGTERM', () => process.exit(0))

if (!first) {
  serve()
} else {
  const poll = () => {
    const c = net.connect(port, '127.0.0.1')
    // Stay up a moment with the port taken, so wattd's readiness probe
    // meets the other program on it (and says so) before this fails.
    c.on('connect', () => { c.destroy(); setTimeout(serve, 1000) })
    c.on('error', () => setTimeout(poll, 50))
  }
  poll()
}
