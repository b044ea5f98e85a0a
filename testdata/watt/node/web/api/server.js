// A plain node:http service that starts its own server, as it would
// without Watt: Watt adopts the server that listen() creates.
import { createServer } from 'node:http'
import { request } from 'undici'

function json (res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' })
  res.end(JSON.stringify(body))
}

const server = createServer(async (req, res) => {
  const url = new URL(req.url, 'http://localhost')
  if (req.method === 'GET' && url.pathname === '/') {
    json(res, 200, { service: 'api', message: 'Hello from a plain Node.js app' })
    return
  }
  if (req.method === 'GET' && url.pathname === '/greet') {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'x-greeting': 'yes' })
    res.end(`Hello, ${url.searchParams.get('name') ?? 'stranger'}!`)
    return
  }
  const m = url.pathname.match(/^\/users\/([^/]+)$/)
  if (req.method === 'GET' && m) {
    // Another application of the same project, reached by its name.
    const r = await fetch(`http://users.plt.local/users/${encodeURIComponent(m[1])}`)
    json(res, r.status, { via: 'api', user: await r.json() })
    return
  }
  const u = url.pathname.match(/^\/undici\/users\/([^/]+)$/)
  if (req.method === 'GET' && u) {
    // The same call with the npm undici package instead of the global fetch.
    const r = await request(`http://users.plt.local/users/${encodeURIComponent(u[1])}`)
    json(res, r.statusCode, { via: 'undici', user: await r.body.json() })
    return
  }
  if (req.method === 'POST' && url.pathname === '/echo') {
    let body = ''
    for await (const chunk of req) body += chunk
    json(res, 201, { received: body, length: Buffer.byteLength(body) })
    return
  }
  json(res, 404, { error: 'not found' })
})

server.listen(process.env.PORT ?? 3000)
