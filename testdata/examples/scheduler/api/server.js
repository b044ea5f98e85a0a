// The application the scheduler calls through the mesh: /cleanup takes the
// job's JSON body, /report answers 200, and / lists the runs so far.
const http = require('node:http')

const runs = []

http.createServer((req, res) => {
  if (req.url === '/') {
    res.setHeader('content-type', 'application/json')
    return res.end(JSON.stringify(runs))
  }
  let body = ''
  req.on('data', (chunk) => { body += chunk })
  req.on('end', () => {
    runs.push({ path: req.url, job: req.headers['x-job'] || null, attempt: req.headers['x-retry-attempt'], body, at: new Date().toISOString() })
    console.log(`${req.method} ${req.url} (attempt ${req.headers['x-retry-attempt']}): ${body}`)
    res.end()
  })
}).listen(3000)
