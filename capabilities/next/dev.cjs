// wattd launcher for the Next.js development server.
//
// `next dev` forks a child process that runs the actual HTTP server, and the
// child is started with its own execArgv and environment: wattd's preload
// (given with --require to the parent) is not loaded there, and the passed
// sockets and the control channel do not reach it. So wattd does not run the
// `next dev` CLI. It runs this file instead, in the worker process itself,
// after the preload:
//
//   node [--enable-source-maps] [nodeOptions] --require <preload> dev.cjs <next package dir> <app dir> [turbopack|webpack]
//
// and starts the same server the `next dev` child starts (Next's
// start-server module, with isDev), in this process. Its listen() is then
// the one the preload redirects to wattd's socket, the mesh client is in the
// process that renders, and drain and stats work as for any Node.js app.
//
// When the dev server wants a restart (a change of next.config), Next exits
// with its restart code; wattd starts the worker again.
'use strict'

const path = require('node:path')

function main () {
  const [nextDir, appDir, bundler] = process.argv.slice(2)
  if (!nextDir || !appDir) {
    process.stderr.write('wattd next dev: usage: dev.cjs <next package dir> <app dir> [turbopack|webpack]\n')
    process.exit(2)
  }
  const env = process.env
  // What bin/next and next-dev set up for the server process they fork.
  if (env.NODE_ENV && env.NODE_ENV !== 'development') {
    process.stderr.write(`wattd next dev: NODE_ENV=${env.NODE_ENV} ignored, the dev server runs with NODE_ENV=development\n`)
  }
  env.NODE_ENV = 'development'
  env.NEXT_RUNTIME = 'nodejs'
  env.__NEXT_DEV_SERVER = '1' // read when route modules load, before the server knows it is dev
  if (!env.NEXT_PRIVATE_START_TIME) env.NEXT_PRIVATE_START_TIME = String(Date.now())
  // Turbopack is the default bundler of `next dev` since Next.js 16;
  // TURBOPACK in the environment, or --webpack/--turbopack in the app's dev
  // script (passed here as the third argument), chooses otherwise.
  if (bundler === 'webpack') {
    delete env.TURBOPACK
  } else if (bundler === 'turbopack') {
    env.TURBOPACK = env.TURBOPACK || '1'
  } else if (!env.TURBOPACK && !env.NEXT_RSPACK) {
    env.TURBOPACK = 'auto'
  }

  let startServer
  try {
    startServer = require(path.join(nextDir, 'dist', 'server', 'lib', 'start-server.js')).startServer
  } catch (err) {
    process.stderr.write(`wattd next dev: cannot load the Next.js server from ${nextDir}: ${err && err.message}\n`)
    process.exit(1)
  }
  if (typeof startServer !== 'function') {
    process.stderr.write(`wattd next dev: the Next.js in ${nextDir} has no startServer (Next.js 13.4 or later is needed)\n`)
    process.exit(1)
  }
  // The port only shows in Next's own messages: the listen is redirected to
  // the socket wattd passed, whatever is asked for here.
  const port = Number(env.PORT) > 0 ? Number(env.PORT) : 3000
  startServer({ dir: appDir, isDev: true, port, allowRetry: false }).catch((err) => {
    console.error(err)
    process.exit(1)
  })
}

main()
