// Re-creates generated/ with Watt's own generators: the Generator classes of
// @platformatic/runtime and @platformatic/node, which `wattpm create`
// (create-wattpm) drives. The answers its prompts would ask for are fixed
// here: two @platformatic/node applications, "main" (the entrypoint) and
// "api", JavaScript, port 3042, npm.
//
//   node generate.mjs <dir with node_modules of wattpm 3> <target dir>
//
// After it, "workers": 2 is added to the runtime's watt.json by hand, as a
// user asking for several workers would.
import { createRequire } from 'node:module'
import { resolve } from 'node:path'

const [modules, target] = process.argv.slice(2)
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
