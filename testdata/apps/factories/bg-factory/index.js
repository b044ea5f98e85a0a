// A background app made by a factory: create() returns an object that
// says isBackgroundApplication, as Watt's application model reads it.
'use strict'
console.log(JSON.stringify({ event: 'loaded' }))

exports.create = async function create () {
  return {
    isBackgroundApplication: true,
    close () { console.log(JSON.stringify({ event: 'close-app' })) }
  }
}
