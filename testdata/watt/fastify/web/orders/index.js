// A Fastify application handed to Watt: create() returns the instance
// without listening, and Watt's logger is used when there is one.
import fastify from 'fastify'

export async function create () {
  const app = fastify({ loggerInstance: globalThis.platformatic?.logger })

  app.get('/health', async () => ({ status: 'ok' }))

  app.get('/orders/:id', async (request) => {
    // Prices come from the catalog application, over the mesh.
    const res = await fetch('http://catalog.plt.local/products/widget')
    const product = await res.json()
    return { id: request.params.id, product: product.name, total: product.price * 2 }
  })

  app.post('/orders', {
    schema: {
      body: {
        type: 'object',
        required: ['sku'],
        properties: { sku: { type: 'string' }, qty: { type: 'integer', minimum: 1 } }
      }
    }
  }, async (request, reply) => {
    reply.code(201)
    return { sku: request.body.sku, qty: request.body.qty ?? 1 }
  })

  return app
}
