// A node:http app for the reload and scaling tests: / answers with the
// worker's pid and $VERSION (so a test sees which configuration a worker
// runs), /burn?ms=N keeps the event loop busy for N ms before answering
// (load that the dynamic scaler sees as event-loop utilisation).
const http = require('node:http')

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x')
  if (url.pathname === '/burn') {
    const until = Date.now() + Number(url.searchParams.get('ms') || 20)
    while (Date.now() < until) { /* busy on purpose */ }
  }
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ app: process.env.WATTD_APP_ID, pid: process.pid, version: process.env.VERSION || '' }))
})
server.listen(process.env.PORT || 3000)
