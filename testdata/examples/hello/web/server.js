// A plain node:http app with no knowledge of wattd: it listens on a port of
// its own choosing, and wattd hands it the shared public socket instead.
const http = require('node:http')

const server = http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ hello: 'world', pid: process.pid, worker: process.env.WATTD_WORKER_ID }))
})

server.listen(process.env.PORT || 8080, () => {
  console.log(`hello listening on ${JSON.stringify(server.address())}`)
})
