'use strict'
// Runs the same calls through pino and through the preload's logger and
// prints both outputs (pino's without time, ours with time removed), for
// logger_test.go. Arguments: the pino module path, logger.cjs's path.
const [pinoPath, loggerPath] = process.argv.slice(2)
const pino = require(pinoPath)
const { createLogger } = require(loggerPath)

function exercise (l, out) {
  const e = new Error('boom')
  e.code = 'E1'
  e.stack = 'Error: boom\n    at here'
  l.info('a', 'b', 3)
  l.info('x %s y %d z %j %o %%', 'S', 4.5, { a: 1 }, { b: 2 })
  l.info({ msg: 'from obj', k: 1 })
  l.info({ k: 1 }, 'm', 'extra')
  l.info({ k: 1 })
  l.info(5)
  l.info(null, 'nul')
  l.info(undefined)
  l.error(e)
  l.error(e, 'ctx')
  l.error({ err: e, other: 1 }, 'ctx2')
  l.info({ nested: { err: e } }, 'nested')
  const c = l.child({ a: 1 })
  c.info({ b: 2 }, 'child')
  const cc = c.child({ a: 3 }, { level: 'error' })
  cc.info('no')
  cc.error('yes')
  c.level = 'warn'
  c.info('filtered')
  c.warn('kept')
  const cir = { a: 1 }
  cir.self = cir
  l.info(cir, 'circ')
  l.info({ big: 10n }, 'big')
  l.info({ u: undefined, f () {}, d: new Date(0) }, 'types')
  l.warn('%s is %d years', 'Bob', 42)
  l.info('%o and %j', 'str', [1, 'x'])
  l.trace('t')
  l.fatal('f')
  // Serializers given to a child, as Fastify gives its request loggers
  // (on the prototype of the object it passes): applied to the merge
  // object's members and to the bindings, inherited by grandchildren.
  const proto = { req: (r) => ({ method: r.method, url: r.url }), res: (r) => ({ statusCode: r.statusCode }) }
  const sc = l.child({ reqId: 'req-1', req: { method: 'GET', url: '/b', extra: 1 } }, { serializers: Object.create(proto) })
  sc.info({ req: { method: 'GET', url: '/x', socket: { big: true } } }, 'incoming request')
  sc.info({ res: { statusCode: 200, body: 'big' }, responseTime: 1 }, 'request completed')
  sc.child({ k: 1 }).info({ req: { method: 'POST', url: '/y', x: 1 } }, 'grandchild keeps them')
  const es = l.child({}, { serializers: { err: (x) => ({ only: x.message }) } })
  es.error({ err: e }, 'custom err')
  es.error(e, 'custom err first')
  // Formatters and redaction given to a child, as in Watt's logging
  // guide: the bindings formatter shapes this child's bindings only, the
  // log formatter every line of it and its children.
  const fc = l.child({ application: 'app1', keep: 1 }, {
    formatters: { bindings: (b) => ({ name: b.application }), log: (o) => ({ ...o, shaped: true }) },
    redact: { paths: ['secret', 'nested.token'], censor: '***HIDDEN***' }
  })
  fc.info({ secret: 's', nested: { token: 't', ok: 1 } }, 'formatted')
  fc.info('no object')
  fc.child({ application: 'app2' }).info({ secret: 's2' }, 'grandchild')
  l.child({}, { redact: ['password'] }).info({ password: 'p', user: 'u' }, 'pino censor')
  out.push(JSON.stringify({
    api: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent', 'child', 'bindings', 'isLevelEnabled', 'flush', 'setBindings'].map((m) => typeof l[m]),
    level: l.level, childLevel: c.level, ccLevel: cc.level,
    bindings: [l.bindings(), c.bindings(), cc.bindings()],
    enabled: [c.isLevelEnabled('info'), c.isLevelEnabled('warn'), l.isLevelEnabled('trace')],
    levels: l.levels,
    levelVal: l.levelVal
  }))
  l.level = 'silent'
  l.fatal('silenced')
  out.push(JSON.stringify({ silentVal: l.levelVal, silentEnabled: l.isLevelEnabled('fatal') }))
}

const theirs = []
exercise(pino({ level: 'trace', base: { pid: 1, hostname: 'h' }, timestamp: false }, { write: (s) => theirs.push(s.replace(/\n$/, '')) }), theirs)
const ours = []
exercise(createLogger({ level: 'trace', base: { pid: 1, hostname: 'h' }, write: (s) => ours.push(s.replace(/\n$/, '').replace(/,"time":\d+/, '')) }), ours)
process.stdout.write(JSON.stringify({ theirs, ours }))
