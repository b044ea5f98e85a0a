'use strict'
// An app that registers metrics of its own in the registry Watt's runtime
// API hands it (globalThis.platformatic.prometheus), as an app using
// @platformatic/globals does; wattd merges them into its endpoint.
//   /call   asks the "api" application over the mesh, then answers
//   /fail   answers 500
//   /escapes registers a gauge whose label value is 180,000 control
//           characters: under the preload's bound on the text, but six
//           times that once JSON-escaped in a stats report
//   /huge   registers a gauge of 20,000 series, over the preload's bound
//           on the text (256 KiB)
//   /renders answers how often the registry was rendered
//   else    answers 200
const http = require('node:http')

const { client, registry } = globalThis.platformatic.prometheus
const answered = new client.Counter({
  name: 'fixture_answers_total',
  help: 'Requests the fixture app answered, by path.',
  labelNames: ['path'],
  registers: [registry]
})
// A name wattd exports itself: wattd's own series must win.
const clash = new client.Gauge({ name: 'nodejs_heap_size_used_bytes', help: 'A clash.', registers: [registry] })
clash.set(-1)

let renders = 0
const metrics = registry.metrics.bind(registry)
registry.metrics = () => { renders++; return metrics() }

const app = process.env.WATTD_APP_ID
const worker = process.env.WATTD_WORKER_ID

const server = http.createServer(async (req, res) => {
  const path = new URL(req.url, 'http://x').pathname
  answered.inc({ path })
  let via
  if (path === '/call') {
    try {
      via = await (await fetch('http://api.plt.local/hello')).json()
    } catch (err) {
      res.statusCode = 502
      res.end(String(err))
      return
    }
  }
  if (path === '/fail') res.statusCode = 500
  if (path === '/escapes' && registry.getSingleMetric('fixture_escapes') === undefined) {
    new client.Gauge({ name: 'fixture_escapes', help: 'A label value that grows sixfold in JSON.', labelNames: ['v'], registers: [registry] })
      .set({ v: '\u0001'.repeat(180000) }, 1)
  }
  if (path === '/huge' && registry.getSingleMetric('fixture_huge') === undefined) {
    const huge = new client.Gauge({ name: 'fixture_huge', help: 'Many series.', labelNames: ['n'], registers: [registry] })
    for (let n = 0; n < 20000; n++) huge.set({ n: String(n) }, n)
  }
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ app, worker, via, renders }))
})
server.listen(3000)
