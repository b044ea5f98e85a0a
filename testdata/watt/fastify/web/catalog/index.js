// The catalog: a Fastify app with one route, exported through create().
import fastify from 'fastify'

const products = { widget: { name: 'Widget', price: 21 } }

export function create () {
  const app = fastify({ loggerInstance: globalThis.platformatic?.logger })
  app.get('/products/:sku', async (request, reply) => {
    const p = products[request.params.sku]
    if (!p) return reply.code(404).send({ error: 'no such product' })
    return p
  })
  return app
}
