'use strict'

// Reports which of Node's built-in modules (internal ones included) were
// loaded before its own first line ran (by the preload), then serves. The preload's start
// is on every worker's critical path, including a crashed worker's
// replacement; startup_test.go checks what it loads.
const loaded = process.moduleLoadList
  .filter((m) => m.startsWith('NativeModule '))
  .map((m) => m.slice('NativeModule '.length))
console.log(JSON.stringify({ event: 'builtins', loaded }))

require('node:http').createServer((req, res) => res.end('ok')).listen(3000)
