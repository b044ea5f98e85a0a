'use strict'
// The data behind the Next.js pages: a plain node:http service.
const { createServer } = require('node:http')

const products = [
  { id: 1, name: 'Lamp', price: 30 },
  { id: 2, name: 'Desk', price: 120 }
]

createServer((req, res) => {
  if (req.url === '/products') {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(products))
    return
  }
  res.writeHead(404, { 'content-type': 'text/plain' })
  res.end('not found')
}).listen(3002)
