// Diagnostics wattd asks a worker for on the control channel ("diagnose",
// ipc/protocol.go), each answered by "diagnosed" with the same id (and the
// error when it failed, with conflict true when it was refused for what the
// worker is doing):
//
//   * heapSnapshot: a V8 heap snapshot written to the file wattd names, in
//     a directory of its runtime directory. V8 writes it in one synchronous
//     call, which blocks the event loop for as long as it takes; wattd
//     knows and does not hold that against the worker.
//   * cpuProfileStart {intervalMicros} and cpuProfileStop {path}: V8's CPU
//     profiler, through an inspector session of the process's own, from
//     start to stop; the profile (Chrome's .cpuprofile JSON) is written to
//     path, and wattd makes of it what its caller wants (pprof).
//   * heapProfileStart {intervalBytes} and heapProfileStop {path}: V8's
//     sampling heap profiler the same way (the .heapprofile JSON).
//   * repl {path, terminal, columns, prompt}: a REPL on a connection to
//     the Unix socket path, where wattd listens (repl.cjs); answered once
//     connected. It blocks nothing.
'use strict'

// The kinds this worker takes; its hello lists them.
const DIAGNOSTICS = ['heapSnapshot', 'cpuProfileStart', 'cpuProfileStop', 'heapProfileStart', 'heapProfileStop', 'repl']

// The inspector session of each profile being taken, by profiler.
const profiling = { cpu: null, heap: null }

function takeHeapSnapshot (d) {
  if (typeof d.path !== 'string' || d.path === '') throw new Error('no path to write the heap snapshot to')
  require('node:v8').writeHeapSnapshot(d.path)
}

// post runs an inspector command and returns its result, or throws its
// error; an in-process session answers before post returns (and what its
// callback throws would only be a warning).
function post (session, method, params) {
  let out, failure
  let answered = false
  session.post(method, params, (err, res) => {
    answered = true
    failure = err
    out = res
  })
  if (failure) throw failure
  if (!answered) throw new Error(`the inspector did not answer ${method}`)
  return out
}

// What each profiler is asked, in the inspector's words.
const profilers = {
  cpu: {
    what: 'CPU profile',
    start: (session, d) => {
      post(session, 'Profiler.enable')
      post(session, 'Profiler.setSamplingInterval', { interval: positive(d.intervalMicros, 1000) })
      post(session, 'Profiler.start')
    },
    stop: (session) => post(session, 'Profiler.stop').profile
  },
  heap: {
    what: 'heap profile',
    start: (session, d) => {
      post(session, 'HeapProfiler.enable')
      post(session, 'HeapProfiler.startSampling', { samplingInterval: positive(d.intervalBytes, 512 * 1024) })
    },
    stop: (session) => post(session, 'HeapProfiler.stopSampling').profile
  }
}

function positive (n, otherwise) {
  return Number.isInteger(n) && n > 0 ? n : otherwise
}

// refused is the error of a diagnostic refused for what the worker is
// doing (a profile already taken, none taken): its answer says conflict,
// and wattd tells its caller so (409) rather than that something failed.
function refused (message) {
  const err = new Error(message)
  err.conflict = true
  return err
}

function startProfile (which, d) {
  const p = profilers[which]
  if (profiling[which] !== null) throw refused(`a ${p.what} is already being taken`)
  const { Session } = require('node:inspector')
  const session = new Session()
  session.connect()
  try {
    p.start(session, d)
  } catch (err) {
    session.disconnect()
    throw err
  }
  profiling[which] = session
}

function stopProfile (which, d) {
  const p = profilers[which]
  if (profiling[which] === null) throw refused(`no ${p.what} is being taken`)
  if (typeof d.path !== 'string' || d.path === '') throw new Error(`no path to write the ${p.what} to`)
  const session = profiling[which]
  profiling[which] = null
  try {
    require('node:fs').writeFileSync(d.path, JSON.stringify(p.stop(session)), { mode: 0o600 })
  } finally {
    session.disconnect()
  }
}

const kinds = {
  heapSnapshot: takeHeapSnapshot,
  cpuProfileStart: (d) => startProfile('cpu', d),
  cpuProfileStop: (d) => stopProfile('cpu', d),
  heapProfileStart: (d) => startProfile('heap', d),
  heapProfileStop: (d) => stopProfile('heap', d)
}

// Kinds that take their time without blocking: answered when done.
const later = {
  repl: (state, d) => require('./repl.cjs').openRepl(state, d)
}

// onDiagnose answers wattd's diagnose message with send (control.cjs).
function onDiagnose (state, msg, send) {
  const d = msg.diagnose
  if (!d || typeof d !== 'object') return
  const answer = { id: d.id, kind: d.kind }
  if (Object.hasOwn(later, d.kind)) {
    let done
    try {
      done = Promise.resolve(later[d.kind](state, d))
    } catch (err) {
      done = Promise.reject(err)
    }
    done.then(() => {}, (err) => { answer.error = (err && err.message) || String(err) })
      .then(() => send(state, { type: 'diagnosed', diagnose: answer }))
    return
  }
  try {
    const take = Object.hasOwn(kinds, d.kind) ? kinds[d.kind] : null
    if (take === null) throw new Error(`cannot take a ${d.kind}`)
    take(d)
  } catch (err) {
    answer.error = (err && err.message) || String(err)
    if (err && err.conflict === true) answer.conflict = true
  }
  // The block is wattd's doing, not the app's: left out of the next
  // report's utilisation and delay.
  if (state.skipBlock !== null) state.skipBlock()
  send(state, { type: 'diagnosed', diagnose: answer })
}

module.exports = { DIAGNOSTICS, onDiagnose }
