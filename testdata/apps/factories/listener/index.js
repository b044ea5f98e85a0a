// create() returns a bare request listener. The response shows what the
// worker was started with.
'use strict'
const isMain = require.main === module

exports.create = function create () {
  return (req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({
      app: 'listener',
      isMain,
      argv: process.argv.slice(2),
      execArgv: process.execArgv,
      nodeOptions: process.env.NODE_OPTIONS || '',
      sourceMaps: process.sourceMapsEnabled === true
    }))
  }
}
