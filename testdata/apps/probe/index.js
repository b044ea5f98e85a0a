// A node:http app for the CLI tests.
//   /status/NNN  answers with status NNN and a short body
//   /echo        the request's method, headers and body, as JSON
//   /bytes       the bytes 00 01 02 ff fe 0a, as application/octet-stream
//   anything else  the environment the process was started with, read from
//                  /proc/self/environ (the Node preload removes the
//                  protocol's own variables from process.env, and the tests
//                  want exactly what wattd handed over), and process.env
const http = require('node:http')
const fs = require('node:fs')

const startEnv = {}
for (const kv of fs.readFileSync('/proc/self/environ', 'latin1').split('\0')) {
  const i = kv.indexOf('=')
  if (i > 0) startEnv[kv.slice(0, i)] = kv.slice(i + 1)
}

http.createServer((req, res) => {
  const m = /^\/status\/(\d{3})$/.exec(req.url)
  if (m) {
    res.statusCode = Number(m[1])
    return res.end(`status ${m[1]} from ${process.env.WATTD_APP_ID}\n`)
  }
  if (req.url === '/bytes') {
    res.setHeader('content-type', 'application/octet-stream')
    return res.end(Buffer.from([0, 1, 2, 0xff, 0xfe, 0x0a]))
  }
  if (req.url === '/echo') {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk) => { body += chunk })
    req.on('end', () => {
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ method: req.method, headers: req.headers, body }))
    })
    return
  }
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ start: startEnv, process: process.env }))
}).listen(3000)
