// Serves HTTP, then starts child processes until the system refuses one,
// or FORKS of them run (a bounded fork bomb: without a pids limit it stops
// at FORKS, default 400). GET / says how many started and why it stopped.
const http = require('node:http')
const { spawn } = require('node:child_process')

const max = Number(process.env.FORKS || 400)
let started = 0
let stopped = ''
function next () {
  if (started >= max) { stopped = 'reached FORKS'; return }
  let child
  try {
    child = spawn('sleep', ['600'], { stdio: 'ignore' })
  } catch (err) {
    stopped = err.code || String(err)
    return
  }
  child.once('error', (err) => { stopped = err.code || String(err) })
  child.once('spawn', () => { started++; setImmediate(next) })
}

http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ started, stopped }))
}).listen(3000, next)
