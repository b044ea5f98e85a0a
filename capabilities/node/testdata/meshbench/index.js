'use strict'
// Benchmark app: every request makes one call to another app and answers
// with its body. /mesh calls http://api.plt.local/ (routed by the preload
// over a Unix socket), /tcp calls the same server at BENCH_TCP_URL with
// plain fetch over loopback TCP, /mesh-http uses http.get over the mesh and
// /none calls nothing (the app's own ceiling).
const http = require('node:http')

const tcpURL = process.env.BENCH_TCP_URL

function get (url) {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c) => { body += c })
      res.on('end', () => resolve(body))
      res.on('error', reject)
    }).on('error', reject)
  })
}

const server = http.createServer(async (req, res) => {
  try {
    let text
    switch (req.url) {
      case '/mesh': text = await (await fetch('http://api.plt.local/')).text(); break
      case '/tcp': text = await (await fetch(tcpURL)).text(); break
      case '/mesh-http': text = await get('http://api.plt.local/'); break
      default: text = 'none'
    }
    res.end(text)
  } catch (err) {
    res.statusCode = 502
    res.end(String(err && err.stack))
  }
})

server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ event: 'listening', address: server.address() }) + '\n'))
