// Calls the "db" application while it starts, as apps that load settings or
// warm up from another service do, and serves what that call got.
const http = require('node:http')
let startup = 'pending'
fetch('http://db.plt.local/')
  .then(async (res) => { startup = `${res.status} ${await res.text()}` })
  .catch((err) => { startup = `error ${err.message}` })
http.createServer((req, res) => res.end(`startup call: ${startup}\n`)).listen(3000)
