// The shape of an app made by Watt's generator: create() returns an
// http.Server that is not listening.
import { createServer } from 'node:http'

export function create () {
  return createServer((_, res) => {
    res.writeHead(200, { 'content-type': 'application/json', connection: 'close' })
    res.end(JSON.stringify({ hello: 'world' }))
  })
}
