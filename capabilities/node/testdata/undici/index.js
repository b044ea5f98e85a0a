'use strict'
// An app that calls other apps at http://<app>.plt.local with the npm undici
// package, 6.x and 7.x side by side, in every way undici offers: request(),
// fetch(), a Pool, a Client, an Agent passed as dispatcher, and an Agent set
// as the global dispatcher. GET /call?v=6&kind=pool&u=URL makes one call and
// answers with what came back, as JSON.
const http = require('node:http')

const undici = { 6: require('undici6'), 7: require('undici7') }

function describeError (err) {
  const e = { name: err.name, message: err.message, code: err.code }
  if (err.cause) {
    e.causeMessage = err.cause.message
    e.causeCode = err.cause.code
  }
  return e
}

// viaDispatcher answers for request() made through a dispatcher.
async function viaDispatcher (d, url, opts) {
  const res = await d.request({ origin: url.origin, path: url.pathname + url.search, method: 'GET', ...opts })
  return { status: res.statusCode, target: res.headers['x-target'] || '', body: await res.body.text() }
}

async function call (v, kind, u) {
  const { request, fetch, Pool, Client, Agent, setGlobalDispatcher, getGlobalDispatcher } = undici[v]
  const url = new URL(u)
  switch (kind) {
    case 'request': {
      const res = await request(u)
      return { status: res.statusCode, target: res.headers['x-target'] || '', body: await res.body.text() }
    }
    case 'post': {
      const res = await request(u, { method: 'POST', body: 'hello undici', headers: { 'content-type': 'text/plain' } })
      return { status: res.statusCode, target: res.headers['x-target'] || '', body: await res.body.text() }
    }
    case 'fetch': {
      const res = await fetch(u)
      return { status: res.status, target: res.headers.get('x-target') || '', body: await res.text() }
    }
    case 'pool': {
      const pool = new Pool(url.origin, { connections: 2 })
      try {
        return await viaDispatcher(pool, url)
      } finally {
        await pool.close()
      }
    }
    case 'client': {
      const client = new Client(url.origin)
      try {
        return await viaDispatcher(client, url)
      } finally {
        await client.close()
      }
    }
    case 'agent': {
      const agent = new Agent()
      try {
        const res = await request(u, { dispatcher: agent })
        return { status: res.statusCode, target: res.headers['x-target'] || '', body: await res.body.text() }
      } finally {
        await agent.close()
      }
    }
    case 'global': {
      // The app's own Agent as the global dispatcher: request() and fetch()
      // of that undici, and getGlobalDispatcher(), all use it.
      const before = getGlobalDispatcher()
      const agent = new Agent({ keepAliveTimeout: 1000 })
      setGlobalDispatcher(agent)
      try {
        const a = await request(u)
        const ra = await a.body.text()
        const b = await fetch(u)
        const rb = await b.text()
        const c = await viaDispatcher(getGlobalDispatcher(), url)
        return { status: a.statusCode, target: a.headers['x-target'] || '', body: [ra, rb, c.body].join('|') }
      } finally {
        setGlobalDispatcher(before)
        await agent.close()
      }
    }
  }
  throw new Error('unknown kind ' + kind)
}

const server = http.createServer((req, res) => {
  const q = new URL(req.url, 'http://x').searchParams
  if (q.get('announce')) process.stdout.write(JSON.stringify({ event: 'call-start' }) + '\n')
  call(q.get('v'), q.get('kind'), q.get('u')).then(
    (r) => ({ ok: true, ...r }),
    (err) => ({ ok: false, error: describeError(err) })
  ).then((out) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify(out))
  })
})
server.listen(0, () => process.stdout.write(JSON.stringify({ event: 'listening' }) + '\n'))
