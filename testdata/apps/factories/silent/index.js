// Neither listens nor exports a factory: the process just ends.
'use strict'
exports.handler = function handler (req, res) { res.end('never served') }
