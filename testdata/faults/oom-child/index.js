// Serves HTTP, and on /child starts a child process that allocates memory
// without bound (10 MiB every 20 ms, every page touched): in a cgroup with a
// memory limit, the kernel's OOM killer ends the child, the largest process,
// and the worker itself lives on. / answers with the worker's pid; /exit
// exits with status 3.
const http = require('node:http')
const { spawn } = require('node:child_process')

const hog = 'const held = []; setInterval(() => { held.push(Buffer.alloc(10 << 20, 1)) }, 20)'

http.createServer((req, res) => {
  if (req.url === '/exit') setTimeout(() => process.exit(3), 10)
  if (req.url === '/child') {
    const child = spawn(process.execPath, ['-e', hog], { stdio: 'ignore' })
    child.on('exit', (code, signal) => console.log(`child exited: ${signal || code}`))
  }
  res.end(JSON.stringify({ app: process.env.WATTD_APP_ID, pid: process.pid }))
}).listen(3000)
