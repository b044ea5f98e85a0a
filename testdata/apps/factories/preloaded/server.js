// Reports the order in which the configured preload modules ran.
'use strict'
const http = require('node:http')
const order = (globalThis.__preloadOrder || []).slice()
http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ app: 'preloaded', order }))
}).listen(3000)
