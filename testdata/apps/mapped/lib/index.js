'use strict'
// Compiled from ../src/index.ts; /?ms=N spins N ms.
const { createServer } = require('node:http')
function parse (url) {
  return { ms: Number(new URL(url, 'http://x').searchParams.get('ms') || 0) }
}
function spinInTypeScript (spin) {
  const until = Date.now() + spin.ms
  let n = 0
  while (Date.now() < until) n++
  return n
}
const every = Number(process.env.SPIN_EVERY_MS || 0)
if (every > 0) setInterval(() => spinInTypeScript({ ms: 20 }), every)
createServer((req, res) => {
  res.end(String(spinInTypeScript(parse(req.url ?? '/'))))
}).listen(3000)
// eslint-disable-next-line spaced-comment
//# sourceMappingURL=index.js.map
