// A background app: it serves nothing (node.hasServer false in its config)
// and does its work on a timer. Nothing else keeps the process up.
'use strict'
let ticks = 0
const timer = setInterval(() => { ticks++ }, 100)
timer.unref()
console.log(JSON.stringify({ event: 'loaded' }))

exports.close = async function close () {
  clearInterval(timer)
  console.log(JSON.stringify({ event: 'close-export', ticks }))
}
