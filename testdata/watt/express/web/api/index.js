// The public Express application. It does not call listen(): it exports
// build() and Watt starts the server and stops it.
import express from 'express'

export function build () {
  const app = express()
  app.use(express.json())

  app.get('/health', (req, res) => {
    res.json({ status: 'ok' })
  })

  app.get('/users/:id', async (req, res) => {
    // Users live in their own application, reached by name on the mesh.
    const r = await fetch(`http://users.plt.local/users/${encodeURIComponent(req.params.id)}`)
    res.status(r.status).json(await r.json())
  })

  app.post('/orders', (req, res) => {
    res.status(201).json({ created: true, items: req.body.items ?? [] })
  })

  return app
}
