// An unchanged Fastify app, logging with its built-in pino logger.
const fastify = require('fastify')({ logger: true })

fastify.get('/', async () => ({ framework: 'fastify', pid: process.pid }))
fastify.get('/slow', async (req) => {
  await new Promise((resolve) => setTimeout(resolve, Number(req.query.ms || 500)))
  return { slow: true, pid: process.pid }
})

fastify.listen({ port: Number(process.env.PORT || 3000), host: '0.0.0.0' }).catch((err) => {
  fastify.log.error(err)
  process.exit(1)
})
