// Calls other applications on the mesh, for the integration tests:
//   /fetch?app=X&path=/p     global fetch to http://X.plt.local/p
//   /get?app=X&path=/p       http.get to the same
//   /post?app=X&path=/p      fetch POST with a JSON body
//   /axios, /got, /nodefetch the same GET with those npm clients, unchanged
//   /fetchurl?url=U          global fetch to U, any URL (not the mesh)
//   /env                     the mesh variables this worker was given
// The answer is {status, body} of the inner call, or {error} if it threw.
const http = require('node:http')

function viaGet (url) {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c) => { body += c })
      res.on('end', () => resolve({ status: res.statusCode, body }))
    }).on('error', reject)
  })
}

async function handle (url) {
  const target = `http://${url.searchParams.get('app')}.plt.local${url.searchParams.get('path') || '/'}`
  switch (url.pathname) {
    case '/fetch': {
      const r = await fetch(target)
      return { status: r.status, body: await r.text() }
    }
    case '/fetchurl': {
      const r = await fetch(url.searchParams.get('url'))
      return { status: r.status, body: await r.text() }
    }
    case '/get':
      return viaGet(target)
    case '/post': {
      const r = await fetch(target, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ n: 42 }) })
      return { status: r.status, body: await r.text() }
    }
    case '/axios': {
      const r = await require('axios').get(target, { responseType: 'text', transformResponse: (x) => x, validateStatus: () => true })
      return { status: r.status, body: r.data }
    }
    case '/got': {
      const { default: got } = await import('got')
      const r = await got(target, { throwHttpErrors: false, retry: { limit: 0 } })
      return { status: r.statusCode, body: r.body }
    }
    case '/nodefetch': {
      const { default: nodeFetch } = await import('node-fetch')
      const r = await nodeFetch(target)
      return { status: r.status, body: await r.text() }
    }
    case '/env':
      return { proxy: process.env.WATTD_MESH_PROXY, proxySocket: process.env.WATTD_MESH_PROXY_SOCKET, meshDir: process.env.WATTD_MESH_DIR }
  }
  return { status: 404 }
}

http.createServer((req, res) => {
  handle(new URL(req.url, 'http://x')).then(
    (out) => res.end(JSON.stringify(out)),
    (err) => res.end(JSON.stringify({ error: String(err && err.cause ? err.cause.message || err.cause : err && err.message) }))
  )
}).listen(3000)
