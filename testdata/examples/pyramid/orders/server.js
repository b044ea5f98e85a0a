// The orders application, called by the gateway with http.get().
//
// A plain node:http server. It asks for port 3002, but under wattd an
// application that is not the entrypoint gets no TCP port: its listen() is
// turned into a listen on this worker's mesh socket, which the other
// applications reach as http://orders.plt.local.
const http = require('node:http')

const orders = [
  { id: 101, userId: 1, productId: 'p-1', quantity: 2 },
  { id: 102, userId: 3, productId: 'p-3', quantity: 1 }
]

const server = http.createServer((req, res) => {
  const { pathname } = new URL(req.url, 'http://orders.plt.local')
  let status = 200
  let value = { servedBy: { app: 'orders', pid: process.pid }, orders }
  if (req.method !== 'GET' || pathname !== '/orders') {
    status = 404
    value = { error: 'not found, try GET /orders' }
  }
  const body = JSON.stringify(value)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
})

server.listen(process.env.PORT || 3002, () => {
  console.log('orders listening')
})
