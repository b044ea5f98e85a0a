'use strict'
// Uses Watt's runtime API the way @platformatic/globals does: through
// globalThis.platformatic and the field set under
// Symbol.for('plt.globals.fields').
const http = require('node:http')

const p = globalThis.platformatic
const fields = p ? [...(p[Symbol.for('plt.globals.fields')] || [])] : []
const out = (event, data) => process.stdout.write(JSON.stringify({ event, ...data }) + '\n')

function snapshot () {
  const s = {}
  for (const k of fields) {
    const v = p[k]
    s[k] = typeof v === 'function' ? 'function' : (v && typeof v === 'object' && k !== 'runtimeConfig' && k !== 'applicationConfig' && k !== 'config') ? 'object' : v
  }
  return s
}
out('globals', { present: p !== undefined, fields, values: p ? snapshot() : null })

const log = p.logger.child({ event: 'log' })
log.trace('trace line')
log.debug('debug line')
log.info({ n: 1 }, 'info %s', 'line')
log.warn('warn line')
log.error(new Error('boom'))
const deeper = log.child({ depth: 2 })
deeper.fatal({ obj: { a: [1, 2] } }, 'fatal line')
out('bindings', { root: p.logger.bindings(), deeper: deeper.bindings(), level: deeper.level, enabled: deeper.isLevelEnabled('info') })

let healthy = true
let ready = false
p.setCustomHealthCheck(async () => {
  if (healthy === 'throw') throw new Error('database unreachable')
  return healthy
})
let huge = false
p.setCustomReadinessCheck(() => huge ? { status: true, body: 'x'.repeat(2 << 20) } : ready ? true : { status: false, statusCode: 503, body: 'warming up' })
p.events.on('closing', () => out('closing', { closing: p.closing }))
p.events.on('stop', () => out('stop', {}))

if (process.env.GLOBALS_SEND_MESSAGE === '1') {
  p.messaging.send('other', 'ping', {}).then(
    () => out('messaging', { error: null }),
    (err) => out('messaging', { error: err.message })
  )
}

http.createServer(async (req, res) => {
  switch (req.url) {
    case '/sick': healthy = false; break
    case '/throw': healthy = 'throw'; break
    case '/ready': ready = true; break
    case '/huge': huge = true; break
    case '/signal':
      await p.sendHealthSignal({ type: 'queue', depth: 7 })
      break
  }
  res.end('ok')
}).listen(3000, () => out('listening', {}))
