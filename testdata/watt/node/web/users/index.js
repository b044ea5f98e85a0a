'use strict'
// An internal service (CommonJS): not the entrypoint, so under Watt it is
// reachable only as http://users.plt.local.
const http = require('node:http')

const users = {
  1: { id: 1, name: 'Ada Lovelace' },
  2: { id: 2, name: 'Alan Turing' }
}

http.createServer((req, res) => {
  const m = req.url.match(/^\/users\/([^/?]+)/)
  const user = m ? users[m[1]] : undefined
  res.writeHead(user ? 200 : 404, { 'content-type': 'application/json' })
  res.end(JSON.stringify(user ?? { error: `no user ${m ? m[1] : ''}` }))
}).listen(3001)
