// An unchanged Express app: app.listen(port) is all it does.
const express = require('express')

const app = express()
app.get('/', (req, res) => res.json({ framework: 'express', pid: process.pid }))
app.get('/slow', (req, res) => {
  setTimeout(() => res.json({ slow: true, pid: process.pid }), Number(req.query.ms || 500))
})
app.listen(Number(process.env.PORT || 3000), () => console.log('express app listening'))
