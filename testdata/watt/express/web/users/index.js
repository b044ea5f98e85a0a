// The users application: an internal Express app, exported through
// create() so that Watt owns its server.
import express from 'express'

const users = new Map([
  ['1', { id: '1', name: 'Ada Lovelace' }],
  ['2', { id: '2', name: 'Grace Hopper' }]
])

export function create () {
  const app = express()
  app.get('/users/:id', (req, res) => {
    const user = users.get(req.params.id)
    if (!user) {
      res.status(404).json({ error: 'user not found' })
      return
    }
    res.json(user)
  })
  return app
}
