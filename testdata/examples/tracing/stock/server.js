'use strict'
// GET /items/:id answers how many of the item are in stock.
const http = require('node:http')

http.createServer((req, res) => {
  const m = /^\/items\/(\w+)$/.exec(req.url)
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ item: m ? m[1] : null, available: m ? m[1].length * 3 : 0 }))
}).listen(3000)
