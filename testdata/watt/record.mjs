// Records what each project of this directory answers under the real
// `wattpm start`, into responses.json, which the wattd tests then expect.
//
//   PATH=<node 22>:$PATH node record.mjs [project...]
//
// Each project needs its node_modules (with wattpm) and, where it has one,
// its build (wattpm build). Only the headers that the apps set themselves are kept.
import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync, existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'

const here = import.meta.dirname
const routes = JSON.parse(readFileSync(join(here, 'routes.json'), 'utf8'))
const outFile = join(here, 'responses.json')
const recorded = existsSync(outFile) ? JSON.parse(readFileSync(outFile, 'utf8')) : {}
// Next.js's x-nextjs-* headers describe its cache, not the app; Watt also
// sends x-nextjs-prerender twice ("1, 1") where next start sends it once.
const KEEP = /^(content-type|x-(?!nextjs-)[a-z0-9-]+)$/

function freePort () {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

async function call (base, r) {
  const init = { method: r.method, headers: {} }
  if (r.send !== undefined) {
    init.body = r.send
    init.headers['content-type'] = r.contentType
  }
  const res = await fetch(base + r.path, init)
  const headers = {}
  for (const [k, v] of res.headers) if (KEEP.test(k)) headers[k] = v
  const body = await res.text()
  // Pages carry build ids and asset hashes: for them only a part is compared.
  if (r.bodyContains !== undefined && !body.includes(r.bodyContains)) {
    throw new Error(`${r.method} ${r.path}: the body has no ${JSON.stringify(r.bodyContains)}:\n${body}`)
  }
  return { ...r, status: res.status, headers, body }
}

async function record (project) {
  const dir = join(here, project)
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const child = spawn(join(dir, 'node_modules', '.bin', 'wattpm'), ['start'], {
    cwd: dir, env: { ...process.env, PORT: String(port) }, stdio: ['ignore', 'inherit', 'inherit'], detached: true
  })
  try {
    const deadline = Date.now() + 60000
    for (;;) {
      try {
        await fetch(base + routes[project][0].path)
        break
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`${project}: no answer on ${base}: ${err.message}`)
        await new Promise((resolve) => setTimeout(resolve, 250))
      }
    }
    const out = []
    for (const r of routes[project]) out.push(await call(base, r))
    return out
  } finally {
    process.kill(-child.pid, 'SIGTERM')
  }
}

const projects = process.argv.length > 2 ? process.argv.slice(2) : Object.keys(routes)
for (const p of projects) {
  recorded[p] = { watt: 'wattpm start ' + JSON.parse(readFileSync(join(here, p, 'node_modules', 'wattpm', 'package.json'), 'utf8')).version + ', node ' + process.version, responses: await record(p) }
}
writeFileSync(outFile, JSON.stringify(recorded, null, 2) + '\n')
