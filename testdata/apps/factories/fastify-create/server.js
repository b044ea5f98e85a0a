// A Watt-style app: exports create() returning a Fastify instance that is
// not listening, and close(). Prints JSON lines on stdout for the tests.
'use strict'
const fastify = require('fastify')

function event (name, extra) {
  console.log(JSON.stringify({ event: name, ...extra }))
}

module.exports.create = async function create () {
  const app = fastify()
  app.get('/', async () => ({ app: 'fastify-create', pid: process.pid, argv: process.argv.slice(2) }))
  app.get('/slow', async () => {
    event('slow-start')
    await new Promise((resolve) => setTimeout(resolve, 500))
    return { slow: true }
  })
  app.addHook('onClose', async () => event('fastify-onClose'))
  event('created')
  return app
}

module.exports.close = async function close () {
  await new Promise((resolve) => setTimeout(resolve, 50))
  event('close-export')
}
