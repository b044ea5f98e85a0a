// Answers every request with the environment the process was started
// with, read from /proc/self/environ: the Node preload removes the
// protocol's own variables from process.env, and the tests want to see
// exactly what wattd handed over.
const http = require('node:http')
const fs = require('node:fs')

const startEnv = {}
for (const kv of fs.readFileSync('/proc/self/environ', 'latin1').split('\0')) {
  const i = kv.indexOf('=')
  if (i > 0) startEnv[kv.slice(0, i)] = kv.slice(i + 1)
}

http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ start: startEnv, process: process.env }))
}).listen(3000)
