// Messaging under the preload: handlers for the test (playing wattd) to
// call, and GET /send?to=&name=&data= which sends a message and answers
// with what it resolved or rejected with.
const http = require('node:http')

const messaging = globalThis.platformatic.messaging

messaging.handle('echo', (data, ctx) => ({ data, from: ctx.from, reqId: ctx.message.reqId }))
messaging.handle({
  async throws () {
    const err = new Error('nope')
    err.code = 42 // not a string: must still reach wattd as one
    throw err
  },
  nothing () {},
  bigint: () => 1n,
  huge: () => 'x'.repeat(2 << 20),
  note (data, ctx) {
    console.log(JSON.stringify({ event: 'note', data, notification: ctx.notification, application: ctx.application }))
  }
})

http.createServer(async (req, res) => {
  const q = new URL(req.url, 'http://x').searchParams
  let out
  try {
    const data = q.has('data') ? JSON.parse(q.get('data')) : undefined
    const result = await messaging.send(q.get('to'), q.get('name'), data)
    out = result === undefined ? { undefined: true } : { resolved: result }
  } catch (err) {
    out = {
      rejected: {
        isError: err instanceof Error,
        message: err.message,
        code: err.code,
        name: err.name,
        statusCode: err.statusCode,
        handlerError: err.handlerError && { message: err.handlerError.message, code: err.handlerError.code, stack: err.handlerError.stack },
        handlerErrorCode: err.handlerErrorCode
      }
    }
  }
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify(out))
}).listen(3000, '127.0.0.1')
