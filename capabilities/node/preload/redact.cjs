// Redaction for globalThis.platformatic.logger: Watt's logger.redact
// ({paths, censor}) with pino's path syntax and results. wattd masks the
// same paths again in what it relays (supervisor/logs/redact.go); doing it
// here too keeps the worker's own output, and whatever reads it before
// wattd, free of the values.
//
// Syntax: members joined by dots (a.b), bracketed and quoted members for
// keys that are not identifiers (a["b-c"]), array indexes (a[0]) and the
// wildcard (a.*, a[*].b, *.b). A value is replaced only where it exists and
// every member on the way is an object or array, as pino does. The app's
// objects are never changed: what lies on a path is copied first.
'use strict'

const DEFAULT_CENSOR = '[redacted]'

// parsePath splits one path into its members; it throws on a malformed
// path, as pino does when the logger is made.
function parsePath (path) {
  if (typeof path !== 'string' || path === '') throw new Error('redact: paths must be non-empty strings')
  const segs = []
  let i = 0
  while (i < path.length) {
    if (path[i] === '[' && (path[i + 1] === '"' || path[i + 1] === "'")) {
      // A quoted member may hold dots and brackets.
      const end = path.indexOf(path[i + 1], i + 2)
      if (end < 0 || path[end + 1] !== ']') throw new Error(`redact path ${JSON.stringify(path)}: unbalanced quotes`)
      segs.push(path.slice(i + 2, end))
      i = end + 2
    } else if (path[i] === '[') {
      const end = path.indexOf(']', i)
      if (end < 0) throw new Error(`redact path ${JSON.stringify(path)}: unclosed [`)
      if (end === i + 1) throw new Error(`redact path ${JSON.stringify(path)}: empty []`)
      segs.push(path.slice(i + 1, end))
      i = end + 1
    } else if (path[i] === '.') {
      throw new Error(`redact path ${JSON.stringify(path)}: empty member`)
    } else {
      let end = i
      while (end < path.length && path[end] !== '.' && path[end] !== '[') end++
      segs.push(path.slice(i, end))
      i = end
    }
    if (path[i] === '.') {
      i++
      if (i === path.length) throw new Error(`redact path ${JSON.stringify(path)}: ends with a dot`)
    }
  }
  return segs
}

// copyable tells whether a value is a plain object or an array: the only
// values a path walks through (pino serializes anything else whole).
function copyable (v) {
  if (v === null || typeof v !== 'object') return false
  if (Array.isArray(v)) return true
  const proto = Object.getPrototypeOf(v)
  return proto === Object.prototype || proto === null
}

function apply (node, segs, i, censor) {
  const seg = segs[i]
  const last = i === segs.length - 1
  let keys
  if (seg === '*') {
    keys = Array.isArray(node) ? node.map((_, j) => j) : Object.keys(node)
  } else if (Object.prototype.hasOwnProperty.call(node, seg)) {
    keys = [seg]
  } else {
    return
  }
  for (const k of keys) {
    if (last) {
      if (node[k] !== undefined) node[k] = censor
      continue
    }
    const child = node[k]
    if (!copyable(child)) continue
    const copy = Array.isArray(child) ? child.slice() : { ...child }
    node[k] = copy
    apply(copy, segs, i + 1, censor)
  }
}

// createRedactor returns a function that gives an object with the paths
// masked (a copy; the argument is left alone), or null when there is
// nothing to mask.
function createRedactor (opts) {
  if (!opts || !Array.isArray(opts.paths) || opts.paths.length === 0) return null
  const censor = typeof opts.censor === 'string' ? opts.censor : DEFAULT_CENSOR
  const paths = opts.paths.map(parsePath)
  return function redact (obj) {
    if (!copyable(obj)) return obj
    const out = Array.isArray(obj) ? obj.slice() : { ...obj }
    for (const segs of paths) apply(out, segs, 0, censor)
    return out
  }
}

module.exports = { createRedactor, parsePath, DEFAULT_CENSOR }
