// The catalog application, called by the gateway with fetch().
//
// A plain node:http server. It asks for port 3003, but under wattd an
// application that is not the entrypoint gets no TCP port: its listen() is
// turned into a listen on this worker's mesh socket, which the other
// applications reach as http://catalog.plt.local.
const http = require('node:http')

const products = [
  { id: 'p-1', title: 'Mechanical keyboard', price: 89 },
  { id: 'p-2', title: 'USB-C cable', price: 9 },
  { id: 'p-3', title: 'Monitor arm', price: 45 }
]

const server = http.createServer((req, res) => {
  const { pathname } = new URL(req.url, 'http://catalog.plt.local')
  let status = 200
  let value = { servedBy: { app: 'catalog', pid: process.pid }, products }
  if (req.method !== 'GET' || pathname !== '/products') {
    status = 404
    value = { error: 'not found, try GET /products' }
  }
  const body = JSON.stringify(value)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
})

server.listen(process.env.PORT || 3003, () => {
  console.log('catalog listening')
})
