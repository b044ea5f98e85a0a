// The entrypoint: each route sends a message to the worker application
// through @platformatic/globals and answers with what came back, so the
// whole exchange can be checked over HTTP.
import { createServer } from 'node:http'
import { getMessaging } from '@platformatic/globals'

const messaging = getMessaging()
const pings = []

// Messages to this application, from the workers (same API both ways).
messaging.handle('pinged', (data) => { pings.push(data) })
messaging.handle('echo', (data, ctx) => ({ data, from: ctx.from }))

function described (err) {
  return {
    message: err.message,
    code: err.code,
    name: err.name,
    statusCode: err.statusCode,
    handlerError: err.handlerError && { message: err.handlerError.message, code: err.handlerError.code },
    handlerErrorCode: err.handlerErrorCode
  }
}

const routes = {
  '/sum': () => messaging.send('worker', 'sum', [1, 2, 3, 4]),
  '/fail': () => messaging.send('worker', 'fail'),
  '/missing': () => messaging.send('worker', 'no-such-handler', 1),
  '/unknown': () => messaging.send('nowhere', 'sum', [1]),
  '/slow': () => messaging.send('worker', 'slow', 5000),
  '/nothing': () => messaging.send('worker', 'nothing'),
  '/self': () => messaging.send('front', 'echo', { hello: 'me' }),
  '/too-big': () => messaging.send('worker', 'sum', ['x'.repeat(2 << 20)]),
  '/bigint': () => messaging.send('worker', 'sum', [1n]),
  '/notify': async () => {
    pings.length = 0
    messaging.notify('worker', 'ping', { seq: 1 })
    return 'sent'
  },
  '/pings': async () => pings
}

createServer(async (req, res) => {
  const route = routes[new URL(req.url, 'http://x').pathname]
  res.setHeader('content-type', 'application/json')
  if (!route) {
    res.statusCode = 404
    res.end('{}')
    return
  }
  let out
  try {
    const result = await route()
    out = result === undefined ? { ok: true, undefined: true } : { ok: true, result }
  } catch (err) {
    out = { ok: false, error: described(err) }
  }
  res.end(JSON.stringify(out))
}).listen(3000)
