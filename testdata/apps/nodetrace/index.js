'use strict'
// A plain Node.js app, with no OpenTelemetry of its own, that wattd traces
// through its preload. The tracing tests run it as two applications:
//
//   /chain?via=V  calls http://internal.plt.local/leaf with fetch (V=fetch)
//                 or http.get (V=get), logs "chain done" and answers with
//                 the callee's body; with own=1 the call is made inside a
//                 span of the app's own, "fetch leaf", made with
//                 globalThis.platformatic.tracerProvider as under Watt
//   /leaf         logs "leaf" and answers "leaf <app>"
const http = require('node:http')

const log = globalThis.platformatic.logger.child({ fixture: 'nodetrace' })
const app = globalThis.platformatic.applicationId

function get (url) {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c) => { body += c })
      res.on('end', () => resolve(body))
    }).on('error', reject)
  })
}

http.createServer(async (req, res) => {
  const u = new URL(req.url, 'http://x')
  try {
    if (u.pathname === '/chain') {
      const url = 'http://internal.plt.local/leaf'
      const leaf = async () => u.searchParams.get('via') === 'get' ? get(url) : (await fetch(url)).text()
      const body = u.searchParams.get('own') === '1'
        ? await globalThis.platformatic.tracerProvider.getTracer('nodetrace').startActiveSpan('fetch leaf', async (span) => {
          try {
            span.setAttribute('leaf.url', url)
            const body = await leaf()
            span.addEvent('leaf answered', { bytes: body.length })
            return body
          } finally {
            span.end()
          }
        })
        : await leaf()
      log.info({ via: u.searchParams.get('via') }, 'chain done')
      res.end(body)
    } else if (u.pathname === '/leaf') {
      // After an await: the request's context follows.
      await new Promise((resolve) => setTimeout(resolve, 2))
      log.info('leaf')
      res.end('leaf ' + app)
    } else {
      res.end('nodetrace ' + app)
    }
  } catch (err) {
    res.statusCode = 500
    res.end(String(err))
  }
}).listen(3000)
