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

// formatTraceparent writes a version 00 header naming spanId as the parent.
function formatTraceparent (traceId, spanId, sampled) {
  return '00-' + traceId + '-' + spanId + (sampled ? '-01' : '-00')
}

// Ids come from one pooled buffer refilled by randomFillSync, so that a
// request costs a slice of it rather than a call into the CSPRNG per id.
const POOL_SIZE = 4096
const pool = Buffer.allocUnsafe(POOL_SIZE)
let poolOffset = POOL_SIZE

function randomHex (bytes, zero) {
  for (;;) {
    if (poolOffset + bytes > POOL_SIZE) {
      randomFillSync(pool)
      poolOffset = 0
    }
    const id = pool.toString('hex', poolOffset, poolOffset + bytes)
    poolOffset += bytes
    if (id !== zero) return id // all zeros is invalid; one chance in 2^64
  }
}

function newTraceId () { return randomHex(16, ZERO_TRACE) }
function newSpanId () { return randomHex(8, ZERO_SPAN) }

// nowMs is the wall clock in Unix epoch milliseconds with the monotonic
// clock's resolution, as spans carry it.
const origin = performance.timeOrigin
function nowMs () { return origin + performance.now() }

module.exports = { parseTraceparent, formatTraceparent, newTraceId, newSpanId, nowMs }
