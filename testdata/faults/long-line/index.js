// Writes one line of 40 KiB when it starts, longer than the line limit of
// wattd's log (16 KiB), then serves: the truncated-line fixture.
const http = require('node:http')

process.stdout.write('long '.repeat(8192) + '\n')
http.createServer((req, res) => res.end('ok\n')).listen(3000)
