// W3C Trace Context (https://www.w3.org/TR/trace-context/): reading and
// writing the traceparent header, and the random ids of traces and spans.
// Pure functions, no state of the preload: tracing.cjs uses them per request.
'use strict'

const { randomFillSync } = require('node:crypto')

const ZERO_TRACE = '00000000000000000000000000000000'
const ZERO_SPAN = '0000000000000000'
// version "-" trace-id "-" parent-id "-" trace-flags, lower-case hex only
// (the spec's HEXDIGLC); version 00 has exactly these 55 characters.
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-|$)/

// parseTraceparent returns {traceId, parentId, sampled} of a valid header
// value, or null. Following the spec: version ff is invalid; version 00 must
// be exactly 55 characters; a later version may carry more fields after a
// "-", which are ignored; all-zero trace and parent ids are invalid. Of the
// flags only "sampled" (bit 0) has a meaning; the others are ignored.
function parseTraceparent (value) {
  if (typeof value !== 'string' || value.length < 55) return null
  const m = TRACEPARENT.exec(value)
  if (m === null) return null
  const version = m[1]
  if (version === 'ff') return null
  if (version === '00' && value.length !== 55) return null
  if (m[2] === ZERO_TRACE || m[3] === ZERO_SPAN) return null
  return { traceId: m[2], parentId: m[3], sampled: (parseInt(m[4], 16) & 1) === 1 }
}

// validIds tells whether traceId and spanId are ids of a span context:
// lower-case hex of 32 and 16 digits, neither all zero.
const HEX_TRACE = /^[0-9a-f]{32}$/
const HEX_SPAN = /^[0-9a-f]{16}$/
function validIds (traceId, spanId) {
  return HEX_TRACE.test(traceId) && HEX_SPAN.test(spanId) && traceId !== ZERO_TRACE && spanId !== ZERO_SPAN
}

// formatTraceparent writes a version 00 header naming spanId as the parent.
function formatTraceparent (traceId, spanId, sampled) {
  return '00-' + traceId + '-' + spanId + (sampled ? '-01' : '-00')
}

// Ids are made as bytes, never as strings, unless something asks for
// their hex (a log line, a traceparent header): a span sends them as
// bytes. Each request or mesh call takes one record of ID_RECORD random
// bytes from a slab filled by one randomFillSync: the trace id (16 bytes),
// the span id (8) and room for the parent span id (8). A slab is never
// refilled: the records it gave out stay theirs for as long as they are
// kept.
const ID_RECORD = 32
const TRACE_ID = 0 // offsets in a record
const SPAN_ID = 16
const PARENT_ID = 24
const SLAB_SIZE = 128 * ID_RECORD
let slab = null
let slabOffset = SLAB_SIZE

// takeIds returns the offset in idSlab() of a fresh record: random trace
// and span ids, neither all zero (which is invalid; one chance in 2^64).
function takeIds () {
  if (slabOffset === SLAB_SIZE) {
    slab = Buffer.allocUnsafeSlow(SLAB_SIZE)
    randomFillSync(slab)
    slabOffset = 0
  }
  const o = slabOffset
  slabOffset += ID_RECORD
  if (allZero(slab, o + TRACE_ID, 16)) slab[o + TRACE_ID + 15] = 1
  if (allZero(slab, o + SPAN_ID, 8)) slab[o + SPAN_ID + 7] = 1
  return o
}

// idSlab is the slab of the record takeIds returned last.
function idSlab () { return slab }

function allZero (b, o, n) {
  let or = 0
  for (let i = 0; i < n; i++) or |= b[o + i]
  return or === 0
}

// hexOf formats n bytes of b from o as lower-case hex.
function hexOf (b, o, n) { return b.toString('hex', o, o + n) }

// nowMs is the wall clock in Unix epoch milliseconds with the monotonic
// clock's resolution, as spans carry it.
// The module's own performance object: the global one is a lazy getter
// (slower to reach on every call) that an app may replace.
const { performance } = require('node:perf_hooks')
const origin = performance.timeOrigin
function nowMs () { return origin + performance.now() }

// @opentelemetry/api's context keys of the span and of suppressed tracing
// (createContextKey makes them with Symbol.for, so every copy of the API
// shares them).
const SPAN_KEY = Symbol.for('OpenTelemetry Context Key SPAN')
const SUPPRESS_KEY = Symbol.for('OpenTelemetry SDK Context Key SUPPRESS_TRACING')

module.exports = {
  parseTraceparent, formatTraceparent, validIds, takeIds, idSlab, hexOf, nowMs, ID_RECORD, TRACE_ID, SPAN_ID, PARENT_ID, SPAN_KEY, SUPPRESS_KEY
}
