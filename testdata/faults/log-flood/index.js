// Serves while writing log lines to stdout as fast as the pipe takes them.
const http = require('node:http')
const line = 'flood '.repeat(20) + '\n'
let n = 0
function flood () {
  while (process.stdout.write(`${n++} ${line}`)) {}
  process.stdout.once('drain', flood)
}
flood()
http.createServer((req, res) => res.end(`flooding ${process.pid} ${n}\n`)).listen(3000)
