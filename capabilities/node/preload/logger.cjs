// A pino-compatible logger for globalThis.platformatic.logger. Watt gives
// apps a pino instance; apps call it as pino: level methods with an
// optional merge object or error first and printf-style arguments,
// child(bindings), bindings(), level get/set, isLevelEnabled, flush. Only
// node: builtins may be used here, so this is a small logger of our own
// that writes pino's line format, one JSON object per call on stdout:
//
//   {"level":30,"time":1700000000000,"pid":42,"hostname":"h",...bindings,...fields,"msg":"..."}
//
// wattd reads the worker's stdout, takes such a line as one entry with its
// level and fields, and adds the app and the worker itself (which is why
// Watt's "name" and "worker" bindings are not repeated on every line).
// Lines are written with process.stdout.write, which is synchronous for
// pipes and files on Linux, so they keep their order with console.log.
'use strict'

const { hostname } = require('node:os')
const { createRedactor } = require('./redact.cjs')

const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 }
const LABELS = Object.fromEntries(Object.entries(LEVELS).map(([k, v]) => [String(v), k]))
const SILENT = Infinity

// lineFields, when set (tracing.cjs, while request ids or tracing are on),
// returns fields of the current request rendered as `,"k":v` pieces, which
// every line gets after the logger's bindings: lineFields(withReqId), the
// request id left out when the logger's bindings have a reqId of their own
// (Fastify's request loggers do), so that no line has the key twice.
let lineFields = null

function setLineFields (fn) {
  lineFields = typeof fn === 'function' ? fn : null
}

// levelValue maps a level name (or a number) to its value; undefined for
// an unknown one.
function levelValue (level) {
  if (level === 'silent') return SILENT
  if (typeof level === 'number' && Number.isFinite(level)) return level
  return LEVELS[level]
}

// serializeError is pino's standard err serializer: type, message, stack,
// then the error's own enumerable members, with its cause serialized too.
function serializeError (err, seen = new Set()) {
  if (seen.has(err)) return '[Circular]'
  seen.add(err)
  const out = { type: err.constructor && err.constructor.name ? err.constructor.name : 'Error', message: String(err.message), stack: String(err.stack) }
  for (const k of Object.keys(err)) {
    if (k in out) continue
    const v = err[k]
    out[k] = v instanceof Error ? serializeError(v, seen) : v
  }
  if (err.cause !== undefined && !('cause' in out)) {
    out.cause = err.cause instanceof Error ? serializeError(err.cause, seen) : err.cause
  }
  return out
}

// stringify is JSON.stringify that never throws on what apps log: a
// circular reference becomes "[Circular]" and a BigInt its digits, as in
// pino.
function stringify (value) {
  try {
    return JSON.stringify(value, bigintReplacer)
  } catch {
    const stack = []
    return JSON.stringify(value, function (key, v) {
      if (typeof v === 'bigint') return Number(v)
      if (v === null || typeof v !== 'object') return v
      // `this` is the holder: pop the path back to it before looking.
      while (stack.length > 0 && stack[stack.length - 1] !== this) stack.pop()
      if (stack.includes(v)) return '[Circular]'
      stack.push(v)
      return v
    })
  }
}

function bigintReplacer (_key, v) {
  return typeof v === 'bigint' ? Number(v) : v
}

// format is pino's printf: %s %d %f %i %j %o %O %% against the arguments
// after the message, read the way pino reads them (a string under %o is
// quoted, a null under %d keeps the placeholder); arguments without a
// placeholder are dropped, as pino drops them.
function format (msg, args) {
  if (args.length === 0 || typeof msg !== 'string') return msg
  let i = 0
  return msg.replace(/%[sdifjoO%]/g, (m) => {
    if (m === '%%') return '%'
    if (i >= args.length) return m
    const a = args[i++]
    switch (m) {
      case '%s': return String(a)
      case '%d':
      case '%f': return a == null ? m : String(Number(a))
      case '%i': return a == null ? m : String(Math.floor(Number(a)))
      default:
        if (a === undefined) return m
        if (typeof a === 'string') return "'" + a + "'"
        if (typeof a === 'function') return a.name || '<anonymous>'
        return stringify(a)
    }
  })
}

// fieldsOf renders a merge object's members as `,"k":v` pieces; err is
// serialized as an error wherever it is an Error.
function fieldsOf (obj) {
  let out = ''
  for (const k of Object.keys(obj)) {
    let v = obj[k]
    if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue
    if (k === 'err' && v instanceof Error) v = serializeError(v)
    const s = stringify(v)
    if (s === undefined) continue
    out += ',' + JSON.stringify(k) + ':' + s
  }
  return out
}

// createLogger builds the root logger. opts: level (a name, default
// info), write (function taking one line; stdout by default), base
// (members of every line; pid and hostname by default), redact (Watt's
// logger.redact: {paths, censor}, applied to merge objects and bindings),
// serializers (as pino's: functions by key, applied to the members of
// merge objects and bindings before redaction).
function createLogger (opts = {}) {
  const write = opts.write || ((line) => process.stdout.write(line))
  const base = opts.base || { pid: process.pid, hostname: hostname() }
  const redact = createRedactor(opts.redact) || ((o) => o)
  const root = { write, prefix: fieldsOf(base), redact }
  const level = levelValue(opts.level) === undefined ? 'info' : opts.level
  return makeLogger(root, '', {}, level, mergeSerializers(null, opts.serializers), null, redact)
}

// mergeSerializers is parent's serializers with more's over them, or
// parent when more has none. As pino, it reads more's inherited members
// too: Fastify hands its request loggers an object whose serializers are
// on its prototype.
function mergeSerializers (parent, more) {
  if (more === null || typeof more !== 'object') return parent
  const out = Object.create(null)
  if (parent !== null) {
    for (const k in parent) out[k] = parent[k]
  }
  let any = parent !== null
  for (const k in more) {
    if (typeof more[k] === 'function') {
      out[k] = more[k]
      any = true
    }
  }
  return any ? out : null
}

// childRedactor reads a child's redact option as pino does: a list of
// paths, or {paths, censor}; null for none.
function childRedactor (r) {
  if (Array.isArray(r)) return createRedactor({ paths: r, censor: PINO_CENSOR })
  if (r !== null && typeof r === 'object') return createRedactor({ paths: r.paths, censor: typeof r.censor === 'string' ? r.censor : PINO_CENSOR })
  return null
}

// pino's censor, where a child's redact names none.
const PINO_CENSOR = '[Redacted]'

// serialize applies serializers to the members of obj, in a copy; obj
// itself when none applies.
function serialize (obj, serializers) {
  if (serializers === null) return obj
  let out = obj
  for (const k of Object.keys(obj)) {
    const fn = serializers[k]
    if (fn === undefined || obj[k] === undefined) continue
    if (out === obj) out = { ...obj }
    try {
      out[k] = fn(obj[k])
    } catch {}
  }
  return out
}

// makeLogger is one logger of the tree: its bindings as a rendered suffix
// (chindings, appended to its parent's as pino does, so a child's binding
// repeats a parent's key rather than replacing it) and as an object.
// serializers, logFormat (formatters.log) and redact are the logger's own,
// which its children inherit and may add to.
function makeLogger (root, chindings, bindings, initialLevel, serializers, logFormat, redact) {
  let levelName = initialLevel
  let levelVal = levelValue(initialLevel)
  let ownReqId = 'reqId' in bindings

  const logger = {
    levels: { labels: { ...LABELS }, values: { ...LEVELS } },
    get level () { return levelName },
    set level (name) {
      const v = levelValue(name)
      if (v === undefined) throw new Error('unknown level ' + name)
      levelName = typeof name === 'number' ? (LABELS[String(name)] || String(name)) : name
      levelVal = v
    },
    get levelVal () { return levelVal },
    isLevelEnabled (name) {
      const v = levelValue(name)
      return v !== undefined && v !== SILENT && v >= levelVal
    },
    // child(bindings, options): options as pino's, of which level,
    // serializers, formatters.bindings (this child's bindings only),
    // formatters.log and redact (added to the parent's, where pino's
    // replaces it: a runtime's logger.redact is never lost) are read.
    child (childBindings, options) {
      const b = childBindings && typeof childBindings === 'object' ? childBindings : {}
      const o = options !== null && typeof options === 'object' ? options : null
      const lvl = o !== null && o.level !== undefined && levelValue(o.level) !== undefined ? o.level : levelName
      const ser = o !== null ? mergeSerializers(serializers, o.serializers) : serializers
      const fmt = o !== null && o.formatters !== null && typeof o.formatters === 'object' ? o.formatters : null
      const log = fmt !== null && typeof fmt.log === 'function' ? fmt.log : logFormat
      let red = redact
      const more = o !== null ? childRedactor(o.redact) : null
      if (more !== null) red = (x) => more(redact(x))
      let shown = b
      if (fmt !== null && typeof fmt.bindings === 'function') {
        try {
          shown = fmt.bindings(b)
        } catch {}
        if (shown === null || typeof shown !== 'object') shown = {}
      }
      return makeLogger(root, chindings + fieldsOf(red(serialize(shown, ser))), { ...bindings, ...b }, lvl, ser, log, red)
    },
    bindings () { return { ...bindings } },
    setBindings (more) {
      if (!more || typeof more !== 'object') return
      chindings += fieldsOf(redact(serialize(more, serializers)))
      Object.assign(bindings, more)
      ownReqId = 'reqId' in bindings
    },
    flush (cb) {
      if (typeof cb === 'function') process.nextTick(cb)
    },
    silent () {},
    onChild () {}
  }
  for (const [name, value] of Object.entries(LEVELS)) {
    logger[name] = function (...args) {
      if (value < levelVal) return
      try {
        const prefix = lineFields === null ? root.prefix + chindings : root.prefix + chindings + lineFields(!ownReqId)
        root.write(renderLine(value, prefix, args, redact, serializers, logFormat) + '\n')
      } catch {}
    }
  }
  return logger
}

// renderLine makes one pino line of a call's arguments: (msg, ...args),
// (obj, msg?, ...args) or (err, msg?, ...args).
function renderLine (value, prefix, args, redact, serializers, logFormat) {
  let obj = null
  let msg
  let rest = args
  const first = args[0]
  if (first instanceof Error) {
    obj = { err: first }
    rest = args.slice(1)
    msg = rest.length > 0 ? rest.shift() : first.message
  } else if (first !== null && typeof first === 'object') {
    obj = first
    rest = args.slice(1)
    msg = rest.length > 0 ? rest.shift() : undefined
  } else if (first === null) {
    rest = args.slice(1)
    msg = rest.length > 0 ? rest.shift() : undefined
  } else {
    msg = first
    rest = args.slice(1)
  }
  if (logFormat !== null) {
    // As pino: the log formatter sees every line's merge object, {} for a
    // line without one.
    try {
      const f = logFormat(obj || {})
      if (f !== null && typeof f === 'object') obj = f
    } catch {}
  }
  if (obj) obj = redact(serialize(obj, serializers))
  const line = '{"level":' + value + ',"time":' + Date.now() + prefix
  let fields = obj ? fieldsOf(obj) : ''
  if (msg === undefined && obj && typeof obj.msg === 'string') {
    // The merge object's msg is the message, where the object put it.
    return line + fields + '}'
  }
  if (msg !== undefined) {
    if (obj && 'msg' in obj) fields = fieldsOf(Object.fromEntries(Object.entries(obj).filter(([k]) => k !== 'msg')))
    const text = format(msg, rest)
    fields += ',"msg":' + (typeof text === 'string' ? JSON.stringify(text) : stringify(text))
  }
  return line + fields + '}'
}

module.exports = { createLogger, LEVELS, levelValue, serializeError, setLineFields }
