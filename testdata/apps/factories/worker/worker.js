// A background app that says so itself: Watt reads a hasServer export of
// false like node.hasServer false. It has no config of its own.
export const hasServer = false

console.log(JSON.stringify({ event: 'loaded' }))

export async function close () {
  console.log(JSON.stringify({ event: 'close-export' }))
}
