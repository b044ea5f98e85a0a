'use strict'
// Logs every case of redact-cases.json through pino with the case's
// redact option, and, when given the preload's logger.cjs, through that
// logger with the same option; prints the members each line has besides
// pino's envelope, for the case's object as a merge object (pino, ours)
// and as a child's bindings (pinoChild, oursChild). Arguments: pino's module path, the cases file,
// optionally logger.cjs's path. For redact_test.go and the node
// capability's logger test.
const [pinoPath, casesPath, loggerPath] = process.argv.slice(2)
const pino = require(pinoPath)
const cases = require(casesPath)

const ENVELOPE = ['level', 'time', 'pid', 'hostname', 'msg']

function strip (line) {
  const o = JSON.parse(line)
  for (const k of ENVELOPE) delete o[k]
  return o
}

function redactOf (c) {
  return c.censor === undefined ? { paths: c.paths } : { paths: c.paths, censor: c.censor }
}

const out = { pino: [], ours: [], pinoChild: [], oursChild: [] }
for (const c of cases) {
  let line = ''
  // pino's own default censor is "[Redacted]"; Watt's schema gives
  // "[redacted]", which is what a Watt app sees when it names none.
  const redact = { censor: '[redacted]', ...redactOf(c) }
  const theirs = pino({ redact }, { write (s) { line = s } })
  theirs.info(c.obj, 'm')
  out.pino.push(strip(line))
  theirs.child(c.obj).info('c')
  out.pinoChild.push(strip(line))
  if (loggerPath) {
    const { createLogger } = require(loggerPath)
    const ours = createLogger({ redact: redactOf(c), write (s) { line = s } })
    ours.info(c.obj, 'm')
    out.ours.push(strip(line))
    ours.child(c.obj).info('c')
    out.oursChild.push(strip(line))
  }
}
process.stdout.write(JSON.stringify(out))
