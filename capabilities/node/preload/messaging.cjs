// platformatic.messaging for a worker under wattd: send(), notify() and
// handle() between applications, as in Watt, carried on the control channel
// and routed by wattd (ipc/protocol.go, "Messaging"; docs/worker-protocol.md).
//
// Watt moves messages between worker threads with structured clone; here
// they cross process boundaries as JSON, so data and answers must be JSON
// values (a Date arrives as its ISO string, a Map as {}, undefined inside an
// array as null). Errors keep Watt's message, code and name.
'use strict'

const { MAX_FRAME, warn, guard } = require('./base.cjs')
const { send: sendControl } = require('./control.cjs')

// Room left in a frame for what wattd adds around a message's data (its
// ids, the sender's name): more than wattd's own estimate, so a message
// this side accepts is never one wattd refuses.
const FRAME_HEADROOM = 1024

const CODE_MESSAGING = 'PLT_RUNTIME_MESSAGING_ERROR'
const CODE_HANDLER_FAILED = 'PLT_ITC_HANDLER_FAILED'
const CODE_HANDLER_NOT_FOUND = 'PLT_ITC_HANDLER_NOT_FOUND'
const CODE_NAME_NOT_STRING = 'PLT_ITC_REQUEST_NAME_IS_NOT_STRING'

// fastifyError makes an error shaped like Watt's (@fastify/error): name
// "FastifyError", a code and statusCode 500.
function fastifyError (message, code) {
  const err = new Error(message)
  err.code = code
  err.name = 'FastifyError'
  err.statusCode = 500
  return err
}

function messagingError (application, detail) {
  return fastifyError(`Cannot send a message to application "${application}": ${detail}`, CODE_MESSAGING)
}

// fromFault turns a fault of a reply back into an error, the handler's own
// error as handlerError/handlerErrorCode as Watt has it.
function fromFault (f) {
  const err = fastifyError(String(f.message), f.code === undefined ? undefined : String(f.code))
  if (f.name) err.name = String(f.name)
  if (f.cause && typeof f.cause === 'object') {
    const cause = new Error(String(f.cause.message))
    if (f.cause.name) cause.name = String(f.cause.name)
    if (f.cause.code !== undefined) cause.code = f.cause.code
    if (typeof f.cause.stack === 'string') cause.stack = f.cause.stack
    err.handlerError = cause
    err.handlerErrorCode = f.cause.code
  }
  return err
}

// toFault describes a thrown value with string members only: wattd reads
// these frames with typed fields, and a number where it expects a string
// would be a protocol violation.
function toFault (err) {
  const f = { message: String(err && err.message !== undefined ? err.message : err) }
  if (err && err.code !== undefined && err.code !== null) f.code = String(err.code)
  if (err && typeof err.name === 'string') f.name = err.name
  if (err && typeof err.stack === 'string') f.stack = err.stack
  return f
}

// encode renders data for the wire; undefined stays out of the frame, so
// it arrives as undefined. It throws for data JSON cannot carry (BigInt,
// cycles) and for data over the frame limit.
function encode (data, extra) {
  if (data === undefined) return undefined
  const json = JSON.stringify(data)
  if (json === undefined) return undefined // a function or a symbol
  if (Buffer.byteLength(json) + extra + FRAME_HEADROOM > MAX_FRAME) {
    throw new RangeError(`the data is over the ${MAX_FRAME}-byte limit of a control frame`)
  }
  return json
}

function startMessaging (state) {
  const ownApp = process.env.WATTD_APP_ID || ''
  const handlers = new Map()
  const waiting = new Map() // id -> { resolve, reject, application }
  let seq = 0
  // Pending sends keep the process alive, as they do in Watt, even though
  // the control channel itself never does.
  let hold = null

  function settle (id) {
    const w = waiting.get(id)
    if (w === undefined) return undefined
    waiting.delete(id)
    if (waiting.size === 0 && hold !== null) {
      clearInterval(hold)
      hold = null
    }
    return w
  }

  // outgoing checks what an app asks to send and builds its frame; what
  // cannot be sent throws Watt's error, naming the target (what: "message"
  // or "notification").
  function outgoing (type, application, name, data, what) {
    if (typeof name !== 'string') {
      throw fastifyError(`ITC request name is not a string: "${String(name)}"`, CODE_NAME_NOT_STRING)
    }
    const to = String(application)
    let json
    try {
      json = encode(data, Buffer.byteLength(name) + Buffer.byteLength(to) + Buffer.byteLength(ownApp))
    } catch (err) {
      throw messagingError(to, `the ${what} cannot be sent: ` + err.message)
    }
    const msg = { type, to, name }
    if (json !== undefined) msg.data = data // writeFrame renders it to the same JSON
    return msg
  }

  function sendRequest (application, name, data) {
    return new Promise((resolve, reject) => {
      const msg = outgoing('message', application, name, data, 'message')
      if (!state.control) throw messagingError(msg.to, "wattd's control channel is closed")
      msg.id = ++seq
      waiting.set(msg.id, { resolve, reject, application: msg.to })
      if (hold === null) hold = setInterval(() => {}, 1 << 30)
      sendControl(state, msg)
    })
  }

  function notify (application, name, data) {
    sendControl(state, outgoing('notify', application, name, data, 'notification'))
  }

  function handle (name, fn) {
    if (name !== null && typeof name === 'object') {
      for (const [k, v] of Object.entries(name)) handlers.set(k, v)
    } else {
      handlers.set(name, fn)
    }
  }

  function request (msg) {
    const req = { reqId: String(msg.id), name: msg.name, data: msg.data }
    const from = { application: msg.from, worker: msg.fromWorker || 0 }
    return { req, from }
  }

  // A message for this worker: run the handler and answer, whatever
  // happens, so the sender never waits out the timeout for a known failure.
  async function onMessage (msg) {
    const id = msg.id
    const { req, from } = request(msg)
    const answer = (m) => sendControl(state, Object.assign({ type: 'reply', id }, m))
    const handler = handlers.get(msg.name)
    if (handler === undefined) {
      answer({ fault: { message: `Handler not found for request: "${msg.name}"`, code: CODE_HANDLER_NOT_FOUND, name: 'FastifyError' } })
      return
    }
    let result
    try {
      result = await handler(msg.data, { message: req, from })
    } catch (err) {
      const fault = {
        message: `Handler failed with error: ${err === null || err === undefined ? err : err.message}`,
        code: CODE_HANDLER_FAILED,
        name: 'FastifyError',
        cause: toFault(err)
      }
      try {
        encode(fault, 0) // a cause too large to send is cut to the message
        answer({ fault })
      } catch {
        answer({ fault: { message: fault.message.slice(0, 4096), code: CODE_HANDLER_FAILED, name: 'FastifyError' } })
      }
      return
    }
    let json
    try {
      json = encode(result, 0)
    } catch (err) {
      answer({ fault: messagingFault(ownApp, `the reply of the "${msg.name}" handler cannot be sent: ${err.message}`) })
      return
    }
    answer(json === undefined ? {} : { data: result })
  }

  function messagingFault (application, detail) {
    const e = messagingError(application, detail)
    return { message: e.message, code: e.code, name: e.name }
  }

  async function onNotify (msg) {
    const { req, from } = request(msg)
    const handler = handlers.get(msg.name)
    if (handler === undefined) {
      warn(`no handler for the "${msg.name}" notification from application "${msg.from}"`)
      return
    }
    try {
      await handler(msg.data, { application: ownApp, message: req, notification: true, from })
    } catch (err) {
      warn(`handler for the "${msg.name}" notification failed`, err)
    }
  }

  function onReply (msg) {
    const w = settle(msg.id)
    if (w === undefined) return
    if (msg.fault && typeof msg.fault === 'object') w.reject(fromFault(msg.fault))
    else w.resolve(msg.data)
  }

  state.handlers.set('message', guard('messaging', (msg) => { onMessage(msg).catch((err) => warn('messaging', err)) }))
  state.handlers.set('notify', guard('messaging', (msg) => { onNotify(msg).catch((err) => warn('messaging', err)) }))
  state.handlers.set('reply', guard('messaging', onReply))
  if (state.control) {
    state.control.on('close', () => {
      for (const id of [...waiting.keys()]) {
        const w = settle(id)
        w.reject(messagingError(w.application, 'The communication channel was closed before receiving a response.'))
      }
    })
  }

  state.messaging = {
    send: (application, name, data, options) => sendRequest(application, name, data, options),
    notify: (application, name, data, options) => notify(application, name, data, options),
    handle
  }
  return state.messaging
}

module.exports = { startMessaging, fromFault, toFault }
