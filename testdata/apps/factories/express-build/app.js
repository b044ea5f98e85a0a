// An ES module exporting build() that returns an Express app, plus create()
// (Watt calls build first).
import express from 'express'

export async function build () {
  const app = express()
  app.get('/', (req, res) => res.json({ app: 'express-build', factory: 'build' }))
  return app
}

export function create () {
  throw new Error('create() must not be called when build() exists')
}
