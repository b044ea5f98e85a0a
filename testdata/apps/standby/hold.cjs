'use strict'
// Required through NODE_OPTIONS, so before wattd's preload: a standby
// that finds START_GATE's file at its start waits, before the preload has
// said hello on its control channel, until the file is gone. A test holds
// a standby short of its handshake that way.
const fs = require('node:fs')

const gate = process.env.START_GATE
if (gate && process.env.WATTD_WORKER_ID === '-1' && fs.existsSync(gate)) {
  process.stdout.write(`held before hello pid=${process.pid}\n`)
  const cell = new Int32Array(new SharedArrayBuffer(4))
  while (fs.existsSync(gate)) Atomics.wait(cell, 0, 0, 20)
}
