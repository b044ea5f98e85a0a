// Per-request hooks of optional features (tracing, request ids, request
// metrics). A feature that is on registers its hook once, at preload start,
// before the app creates any server; a feature that is off registers
// nothing, so the requests of an app that uses none of them pay nothing.
'use strict'

const { warn } = require('./base.cjs')

// onRequest registers fn(req, res), run before the app's own handlers for
// every HTTP request that a server wattd manages (the app's public server
// and its mesh server) receives. fn runs synchronously inside the emit of
// 'request', so AsyncLocalStorage.enterWith() in it reaches the app's
// handler. Hooks run in the order they were registered.
function onRequest (state, fn) {
  if (typeof fn !== 'function') throw new TypeError('onRequest: fn must be a function')
  state.requestHooks.push(fn)
  // The preload's request listener is attached only once some hook wants it.
  if (state.requestHookWanted !== null) state.requestHookWanted()
}

// runRequestHooks runs every registered hook; one that throws is reported
// and the request goes on to the app.
function runRequestHooks (state, req, res) {
  const hooks = state.requestHooks
  for (let i = 0; i < hooks.length; i++) {
    try {
      hooks[i](req, res)
    } catch (err) {
      warn('request hook', err)
    }
  }
}

module.exports = { onRequest, runRequestHooks }
