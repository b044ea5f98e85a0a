'use strict'
globalThis.__preloadOrder = (globalThis.__preloadOrder || []).concat('first.cjs')
