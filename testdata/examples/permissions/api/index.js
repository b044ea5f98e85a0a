'use strict'

// Tries three file accesses and says what the permission model let through.
const http = require('node:http')
const fs = require('node:fs')
const path = require('node:path')

function attempt (fn) {
  try {
    fn()
    return 'allowed'
  } catch (err) {
    return err.code || err.message
  }
}

http.createServer((req, res) => {
  let greeting = null
  const result = {
    model: process.permission ? 'on' : 'off',
    readData: attempt(() => { greeting = fs.readFileSync(path.join(__dirname, '..', 'data', 'greeting.txt'), 'utf8').trim() }),
    readEtc: attempt(() => fs.readFileSync('/etc/hostname')),
    writeUploads: attempt(() => fs.writeFileSync(path.join(__dirname, 'uploads', 'last.txt'), new Date().toISOString())),
    writeData: attempt(() => fs.writeFileSync(path.join(__dirname, '..', 'data', 'nope.txt'), 'x'))
  }
  result.greeting = greeting
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify(result))
}).listen(3000)
