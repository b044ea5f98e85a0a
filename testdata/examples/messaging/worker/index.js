// The worker application: it has no HTTP routes anyone calls; it answers
// messages. It uses globalThis.platformatic directly, as a CommonJS app can.
const http = require('node:http')

const { messaging } = globalThis.platformatic
const me = process.env.WATTD_APP_ID + ' worker ' + process.env.WATTD_WORKER_ID

messaging.handle('sum', (numbers) => ({
  sum: numbers.reduce((a, b) => a + b, 0),
  by: me
}))

messaging.handle({
  fail () {
    const err = new Error('the worker refused')
    err.code = 'E_REFUSED'
    throw err
  },
  slow: (ms) => new Promise((resolve) => setTimeout(() => resolve('late'), ms)),
  nothing: () => undefined,
  // A notification: the front application counts who got it.
  ping (data, ctx) {
    messaging.send('front', 'pinged', { by: me, seq: data.seq, notification: ctx.notification === true })
      .catch((err) => console.error('pinged:', err.message))
  }
})

// A server so that wattd sees the application serve on the mesh.
http.createServer((req, res) => res.end(me + '\n')).listen(0)
