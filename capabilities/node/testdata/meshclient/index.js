'use strict'
// An app that calls other apps at http://<app>.plt.local, written as if
// wattd did not exist: with global fetch, http.get, http.request and
// new http.ClientRequest. Each route makes the calls its query asks for and
// answers with what came back (or the error), as JSON, so that the test can
// check what the mesh client did.
const http = require('node:http')
const crypto = require('node:crypto')

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')

function describeError (err) {
  if (!err || typeof err !== 'object') return { message: String(err) }
  // DOMException has a numeric code; the test reads codes as strings.
  const code = (x) => x.code === undefined ? undefined : String(x.code)
  const e = { name: err.name, message: err.message, code: code(err) }
  if (err.cause) {
    e.causeName = err.cause.name
    e.causeMessage = err.cause.message
    e.causeCode = code(err.cause)
  }
  return e
}

function summary (buf) {
  const s = { bodyLen: buf.length, bodySha: crypto.createHash('sha256').update(buf).digest('hex') }
  if (buf.length <= 4096) s.body = buf.toString('utf8')
  return s
}

// requestBody makes a fetch body of the given kind; all of them carry
// the same bytes, "hello mesh" (except form, which is multipart).
function requestBody (kind) {
  const text = 'hello mesh'
  switch (kind) {
    case 'string': return text
    case 'buffer': return Buffer.from(text)
    case 'uint16': return new Uint16Array(new Uint8Array(Buffer.from(text)).buffer) // "hello mesh" is 10 bytes
    case 'arraybuffer': return new Uint8Array(Buffer.from(text)).buffer
    case 'params': return new URLSearchParams({ a: '1', b: 'two words' })
    case 'blob': return new Blob([text], { type: 'application/x-test' })
    case 'form': {
      const f = new FormData()
      f.append('field', 'value')
      f.append('file', new Blob(['file content'], { type: 'text/plain' }), 'f.txt')
      return f
    }
    case 'stream': {
      const parts = ['hello', ' ', 'mesh']
      return new ReadableStream({
        pull (c) {
          if (parts.length === 0) c.close()
          else c.enqueue(new TextEncoder().encode(parts.shift()))
        }
      })
    }
  }
  return undefined
}

async function doFetch (q) {
  const init = {}
  if (q.get('method')) init.method = q.get('method')
  if (q.get('redirect')) init.redirect = q.get('redirect')
  if (q.get('body')) {
    init.body = requestBody(q.get('body'))
    if (q.get('body') === 'stream') init.duplex = 'half'
  }
  if (q.get('header')) init.headers = { 'x-test': q.get('header') }
  if (q.get('next')) {
    // What Next.js passes on to the fetch it wrapped.
    init.next = { revalidate: 10, fetchType: 'origin', fetchIdx: 1 }
    init.cache = 'no-store'
    init.signal = undefined
    init.body = init.body || undefined
  }
  let timer
  if (q.get('abort')) {
    const ac = new AbortController()
    init.signal = ac.signal
    timer = setTimeout(() => ac.abort(), Number(q.get('abort')))
  }
  let input = q.get('u')
  if (q.get('as') === 'url') input = new URL(input)
  if (q.get('as') === 'request') {
    input = new Request(input, init)
    for (const k of Object.keys(init)) delete init[k]
  }
  if (q.get('announce')) out({ event: 'fetch-start' })
  const started = Date.now()
  try {
    const res = await fetch(input, init)
    const r = {
      ok: true,
      status: res.status,
      statusText: res.statusText,
      url: res.url,
      redirected: res.redirected,
      bodyNull: res.body === null,
      contentType: res.headers.get('content-type'),
      target: res.headers.get('x-target'),
      setCookies: res.headers.getSetCookie()
    }
    // readAfter: the reader holds the body back that long first.
    if (q.get('readAfter')) await new Promise((resolve) => setTimeout(resolve, Number(q.get('readAfter'))))
    Object.assign(r, summary(Buffer.from(await res.arrayBuffer())))
    r.ms = Date.now() - started
    return r
  } catch (err) {
    return { ok: false, error: describeError(err), ms: Date.now() - started }
  } finally {
    clearTimeout(timer)
  }
}

// viaHTTP makes a request with node:http in one of its forms and reads the
// whole response.
function viaHTTP (q) {
  return new Promise((resolve) => {
    const started = Date.now()
    const onResponse = (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve(Object.assign({
        ok: true, status: res.statusCode, target: res.headers['x-target'] || null, ms: Date.now() - started
      }, summary(Buffer.concat(chunks)))))
      res.on('error', (err) => resolve({ ok: false, error: describeError(err) }))
    }
    let req
    const u = q.get('u')
    const body = q.get('body')
    if (q.get('announce')) out({ event: 'http-start' })
    try {
      switch (q.get('form')) {
        case 'get':
          req = http.get(u, onResponse)
          break
        case 'options': {
          const p = new URL(u)
          req = http.request({ host: p.hostname, port: p.port, path: p.pathname + p.search, method: q.get('method') || 'GET' }, onResponse)
          break
        }
        case 'clientrequest':
          req = new http.ClientRequest(u, { method: q.get('method') || 'GET' }, onResponse)
          break
        default:
          req = http.request(u, { method: q.get('method') || 'GET', headers: body ? { 'content-type': 'text/plain' } : {} }, onResponse)
      }
    } catch (err) {
      resolve({ ok: false, error: describeError(err), thrown: true })
      return
    }
    req.on('error', (err) => resolve({ ok: false, error: describeError(err), ms: Date.now() - started }))
    if (q.get('form') !== 'get') req.end(body || undefined)
  })
}

// seq runs n calls one after the other and lists their results.
async function seq (q, fn) {
  const n = Number(q.get('n') || 1)
  const results = []
  for (let i = 0; i < n; i++) results.push(await fn(q))
  return results
}

const server = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x')
  const q = u.searchParams
  let work
  switch (u.pathname) {
    case '/fetch': work = doFetch(q); break
    case '/http': work = viaHTTP(q); break
    case '/seq-fetch': work = seq(q, doFetch); break
    case '/seq-http': work = seq(q, viaHTTP); break
    case '/meta':
      work = import('node:http').then((esm) => ({
        fetchName: fetch.name,
        fetchLength: fetch.length,
        esmRequestPatched: esm.request === http.request && esm.default.request === http.request,
        getLength: http.get.length,
        instanceOk: (() => {
          const r = new http.ClientRequest('http://127.0.0.1:1/', () => {})
          r.on('error', () => {})
          r.destroy()
          return r instanceof http.ClientRequest && r instanceof http.OutgoingMessage
        })()
      }))
      break
    default:
      res.statusCode = 404
      res.end()
      return
  }
  work.then((result) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify(result))
  }, (err) => {
    res.statusCode = 500
    res.end(String(err && err.stack))
  })
})

server.listen(0, '127.0.0.1', () => out({ event: 'listening', address: server.address() }))
