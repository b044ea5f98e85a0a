// Serves HTTP, then allocates memory without bound (10 MiB every 20 ms,
// every page touched) until something stops it: the memory limit fixture.
const http = require('node:http')

const held = []
http.createServer((req, res) => res.end(JSON.stringify({ app: process.env.WATTD_APP_ID, held: held.length * 10 })))
  .listen(3000, () => {
    setInterval(() => { held.push(Buffer.alloc(10 << 20, 1)) }, 20)
  })
