// An app that reads Watt's globalThis.platformatic.prometheus without having
// prom-client among its packages. GET / answers whether the field was
// undefined.
const http = require('node:http')

const prometheus = globalThis.platformatic.prometheus

http.createServer((req, res) => {
  res.end(`prometheus is ${prometheus === undefined ? 'undefined' : 'set'}\n`)
}).listen(3000)
