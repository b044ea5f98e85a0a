// The users application, called by the gateway with fetch().
//
// A plain node:http server. It asks for port 3001, but under wattd an
// application that is not the entrypoint gets no TCP port: its listen() is
// turned into a listen on this worker's mesh socket, which the other
// applications reach as http://users.plt.local.
const http = require('node:http')

const users = [
  { id: 1, name: 'Ada' },
  { id: 2, name: 'Grace' },
  { id: 3, name: 'Linus' }
]

const server = http.createServer((req, res) => {
  const { pathname } = new URL(req.url, 'http://users.plt.local')
  let status = 200
  let value = { servedBy: { app: 'users', pid: process.pid }, users }
  if (req.method !== 'GET' || pathname !== '/users') {
    status = 404
    value = { error: 'not found, try GET /users' }
  }
  const body = JSON.stringify(value)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
})

server.listen(process.env.PORT || 3001, () => {
  console.log('users listening')
})
