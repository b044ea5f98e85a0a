// Serves, but ignores SIGTERM (and keeps its event loop busy with a timer).
const http = require('node:http')
process.on('SIGTERM', () => console.log('SIGTERM received and ignored'))
setInterval(() => {}, 1000)
http.createServer((req, res) => res.end(`stubborn ${process.pid}\n`)).listen(3000)
