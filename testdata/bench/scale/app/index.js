'use strict'

// One tiny HTTP app that every application of the scale fixture runs: the
// fixture measures wattd with many workers, so the app itself should cost
// as little as a Node.js server can. It answers with its application id
// and worker index, which lets a check see which worker served it.

const http = require('node:http')

const body = Buffer.from(`${process.env.WATTD_APP_ID || 'app'} ${process.env.WATTD_WORKER_ID || '0'}\n`)

http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length })
  res.end(body)
}).listen(process.env.PORT || 3000)
