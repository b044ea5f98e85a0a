// The TypeScript source of lib/index.js, compiled by hand with its source
// map so that the tests need no compiler: a CPU profile taken with source
// maps shows spinInTypeScript here, at line 14.
import { createServer, IncomingMessage, ServerResponse } from 'node:http'

interface Spin {
  ms: number
}

function parse (url: string): Spin {
  return { ms: Number(new URL(url, 'http://x').searchParams.get('ms') || 0) }
}

function spinInTypeScript (spin: Spin): number {
  const until = Date.now() + spin.ms
  let n = 0
  while (Date.now() < until) n++
  return n
}

// SPIN_EVERY_MS=N: spin 20 ms every N ms, with no request needed.
const every: number = Number(process.env.SPIN_EVERY_MS || 0)
if (every > 0) setInterval(() => spinInTypeScript({ ms: 20 }), every)

createServer((req: IncomingMessage, res: ServerResponse) => {
  res.end(String(spinInTypeScript(parse(req.url ?? '/'))))
}).listen(3000)
