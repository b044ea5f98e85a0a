'use strict'
// A Fastify app that logs through the runtime's logger, as Watt's
// migration guide has it (fastify({ loggerInstance: getLogger() })), for
// logger_test.go. Fastify comes from the fastify fixture app's packages
// (testdata/apps/fastify, installed by make deps).
const path = require('node:path')
const fastify = require(path.join(__dirname, '..', '..', '..', '..', 'testdata', 'apps', 'fastify', 'node_modules', 'fastify'))

const app = fastify({ loggerInstance: globalThis.platformatic.logger })
app.get('/', async (req) => {
  req.log.info({ route: 'root' }, 'handled')
  return { ok: true }
})
app.listen({ port: 3000 })
