// Starts children that try to outlive the worker, then serves HTTP: a
// sleep detached into a session of its own (detached: true is setsid(2)),
// and a detached node process that also ignores SIGTERM and SIGHUP.
// GET / answers with their pids.
const http = require('node:http')
const { spawn } = require('node:child_process')

const opts = { detached: true, stdio: 'ignore' }
const setsid = spawn('sleep', ['1000'], opts)
const stubborn = spawn(process.execPath, ['-e', "process.on('SIGTERM',()=>{});process.on('SIGHUP',()=>{});setInterval(()=>{},1000)"], opts)
setsid.unref()
stubborn.unref()

http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ pid: process.pid, children: [setsid.pid, stubborn.pid] }))
}).listen(3000)
