// An ES module app using the options form of listen(), as Fastify does.
import { createServer } from 'node:http'

const server = createServer((req, res) => {
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ app: 'esm', url: req.url }))
})
await new Promise((resolve, reject) => {
  server.once('error', reject)
  server.listen({ port: 3000, host: '0.0.0.0' }, resolve)
})
process.stdout.write(JSON.stringify({ event: 'listening', address: server.address() }) + '\n')
