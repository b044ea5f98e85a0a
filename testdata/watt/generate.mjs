// Re-creates the generated projects with Watt's own generators, the classes
// of @platformatic/runtime and @platformatic/node that `wattpm create`
// (create-wattpm) drives, with the answers to its prompts fixed here.
//
//   node generate.mjs <dir with node_modules of wattpm 3> <target dir> [runtime|wrap]
//
// runtime (generated/): a new project of two @platformatic/node
// applications, "main" (the entrypoint) and "api", JavaScript, port 3042,
// npm. After it, "workers": 2 is added to its watt.json by hand, as a user
// asking for several workers would.
//
// wrap (wrapped-express/): what `wattpm create` does in the folder of an
// existing app when asked to wrap it into Watt: the target must hold the
// app (index.js, package.json); watt.json, .env and package.json's
// dependencies are written. "@platformatic/node" is then set to ^3.65.0, the
// newest 3.x of it on the registry, where the generator writes the runtime's
// own version.
import { createRequire } from 'node:module'
import { resolve } from 'node:path'

const [modules, target, mode = 'runtime'] = process.argv.slice(2)
if (!modules || !target) {
  console.error('usage: node generate.mjs <dir with node_modules of wattpm 3> <target dir>')
  process.exit(2)
}
const require = createRequire(resolve(modules, 'node_modules') + '/')
const runtime = await import(require.resolve('@platformatic/runtime'))
const node = await import(require.resolve('@platformatic/node'))
const { default: pino } = await import(require.resolve('pino'))

const logger = pino({ level: 'info' })
const answers = { typescript: false, port: 3042 }
// Answers each question as the fixed answers say, or with its default,
// and prints the question as it would have been asked.
const inquirer = {
  async prompt (questions) {
    const out = {}
    for (const q of [].concat(questions)) {
      out[q.name] = q.name in answers ? answers[q.name] : q.default
      console.log(`? ${q.message} ${out[q.name]}`)
    }
    return out
  }
}
const options = { logger, inquirer, runtimeConfig: 'watt.json', applicationsFolder: 'web' }

if (mode === 'wrap') {
  // As create-wattpm's wrapApplication does it.
  const wrapped = new runtime.WrappedGenerator({ ...options, module: '@platformatic/node', name: 'express-app' })
  wrapped.setConfig({ ...wrapped.config, skipTypescript: true, skipServer: true, targetDirectory: resolve(target), typescript: false })
  await wrapped.ask()
  await wrapped.prepare()
  await wrapped.writeFiles()
  process.exit(0)
}
const generator = new runtime.Generator({ ...options, name: 'generated', packageManager: 'npm' })
generator.setConfig({ ...generator.config, targetDirectory: resolve(target) })
await generator.populateFromExistingConfig()
for (const applicationName of ['main', 'api']) {
  const app = new node.Generator({ ...options, applicationName, parent: generator })
  app.setConfig({ ...app.config, applicationName })
  generator.addApplication(app, applicationName)
  await app.ask()
}
generator.setEntryPoint('main')
await generator.ask()
await generator.prepare()
await generator.writeFiles()
