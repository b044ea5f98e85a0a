// Leaves orphans that exit soon after: each GET /spawn runs a shell that
// starts a short sleep in the background and exits at once, so the sleep
// is orphaned and re-parented to the nearest subreaper (wattd, or the
// container's PID 1), which must reap it when it exits. The answer is the
// sleep's pid as this worker sees it.
const http = require('node:http')
const { execFile } = require('node:child_process')

http.createServer((req, res) => {
  if (req.url !== '/spawn') {
    res.end(JSON.stringify({ pid: process.pid }))
    return
  }
  execFile('sh', ['-c', 'sleep 0.3 </dev/null >/dev/null 2>&1 & echo $!'], (err, stdout) => {
    res.statusCode = err ? 500 : 200
    res.end(JSON.stringify({ orphan: err ? null : Number(stdout.trim()) }))
  })
}).listen(3000)
