// A node:http app for the reload and scaling tests: / answers with the
// worker's pid and $VERSION (so a test sees which configuration a worker
// runs), /burn?ms=N keeps the event loop busy for N ms before answering
// (load that the dynamic scaler sees as event-loop utilisation), and
// /burn?cpums=N until the process has used N ms more CPU time, however
// long a loaded machine makes that take. $START_DELAY_MS holds the listen
// back that long (an app slow to start).
const http = require('node:http')

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x')
  if (url.pathname === '/burn') {
    if (url.searchParams.has('cpums')) {
      const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000 }
      const until = cpu() + Number(url.searchParams.get('cpums'))
      while (cpu() < until) { /* busy on purpose */ }
    } else {
      const until = Date.now() + Number(url.searchParams.get('ms') || 20)
      while (Date.now() < until) { /* busy on purpose */ }
    }
  }
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ app: process.env.WATTD_APP_ID, pid: process.pid, version: process.env.VERSION || '' }))
})
setTimeout(() => server.listen(process.env.PORT || 3000), Number(process.env.START_DELAY_MS || 0))
