// A Watt application that uses the runtime API through the real
// @platformatic/globals package, as apps written for Watt do.
import {
  getApplicationId, getWorkerId, isEntrypoint, getRoot, getRuntimeId, getHost, getPort,
  getLogger, getLogLevel, getEvents, getClosing, getRuntimeConfig, getApplicationConfig,
  getConfig, getPrometheus, setCustomHealthCheck, setCustomReadinessCheck, getSendHealthSignal,
  setBasePath, hasField
} from '@platformatic/globals'
import { createServer } from 'node:http'

const logger = getLogger().child({ component: 'fixture' })
logger.info({ applicationId: getApplicationId(), workerId: getWorkerId() }, 'globals fixture loaded')

let healthy = true
let ready = true
let unreadyCode = 503
setCustomHealthCheck(async () => healthy)
setCustomReadinessCheck(() => ready ? true : { status: false, statusCode: unreadyCode, body: 'warming up' })
setBasePath('/fixture')

getEvents().on('closing', () => {
  logger.warn({ closing: getClosing() }, 'globals fixture closing')
})

const { client, registry } = getPrometheus()
const hits = new client.Counter({ name: 'fixture_hits_total', help: 'requests served', registers: [registry] })

createServer(async (req, res) => {
  hits.inc()
  const url = new URL(req.url, 'http://x')
  switch (url.pathname) {
    case '/':
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({
        applicationId: getApplicationId(),
        workerId: getWorkerId(),
        isEntrypoint: isEntrypoint(),
        root: getRoot(),
        runtimeId: getRuntimeId(),
        host: getHost(),
        port: getPort(),
        logLevel: getLogLevel(),
        closing: getClosing(),
        entrypoint: getRuntimeConfig().entrypoint,
        appConfigId: getApplicationConfig().id,
        hasServer: getConfig().node.hasServer,
        hasMessaging: hasField('messaging'),
        pid: process.pid
      }))
      return
    case '/log':
      logger.error({ code: 'E_FIXTURE' }, 'fixture says %s', url.searchParams.get('msg'))
      res.end('logged')
      return
    case '/sick':
      healthy = false
      res.end('sick ' + process.pid)
      return
    case '/unready':
      ready = false
      // ?code=N: the status the failing check asks the probe for.
      if (url.searchParams.has('code')) unreadyCode = Number(url.searchParams.get('code'))
      res.end('unready ' + process.pid)
      return
    case '/signal':
      await getSendHealthSignal()({ type: 'fixture', value: Number(url.searchParams.get('v')) })
      res.end('signalled ' + process.pid)
      return
    case '/metrics':
      res.end(await registry.metrics())
      return
  }
  res.statusCode = 404
  res.end()
}).listen(3000)
