// An Express service as it was before Watt: it starts its own server.
import express from 'express'

const app = express()

app.get('/health', (req, res) => {
  res.json({ status: 'ok' })
})

app.get('/books/:id', (req, res) => {
  res.json({ id: req.params.id, title: 'Notes on the Analytical Engine' })
})

const port = process.env.PORT ?? 3000
app.listen(port, () => {
  console.log(`listening on ${port}`)
})
