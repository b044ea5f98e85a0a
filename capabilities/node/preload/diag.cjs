// Diagnostics wattd asks a worker for on the control channel ("diagnose",
// ipc/protocol.go): a V8 heap snapshot written to the file wattd names, in
// a directory of its runtime directory. V8 writes it in one synchronous
// call, which blocks the event loop for as long as it takes; wattd knows
// and does not hold that against the worker. The answer ("diagnosed")
// carries the error when it failed.
'use strict'

// The kinds this worker takes; its hello lists them.
const DIAGNOSTICS = ['heapSnapshot']

// onDiagnose answers wattd's diagnose message with send (control.cjs).
function onDiagnose (state, msg, send) {
  const d = msg.diagnose
  if (!d || typeof d !== 'object') return
  const answer = { id: d.id, kind: d.kind }
  try {
    if (d.kind !== 'heapSnapshot' || typeof d.path !== 'string' || d.path === '') {
      throw new Error(`cannot take a ${d.kind}`)
    }
    require('node:v8').writeHeapSnapshot(d.path)
  } catch (err) {
    answer.error = (err && err.message) || String(err)
  }
  send(state, { type: 'diagnosed', diagnose: answer })
}

module.exports = { DIAGNOSTICS, onDiagnose }
