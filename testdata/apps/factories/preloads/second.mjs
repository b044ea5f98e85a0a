// An ES module with top-level await: the app must start only after it.
await new Promise((resolve) => setTimeout(resolve, 50))
globalThis.__preloadOrder = (globalThis.__preloadOrder || []).concat('second.mjs')
