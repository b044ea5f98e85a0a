// A plain Next.js configuration: wattd needs nothing special from it.
/** @type {import('next').NextConfig} */
const nextConfig = {
  // Keep `next dev` (run by the tests) from writing an AGENTS.md file of
  // editor rules into the fixture.
  agentRules: false
}

export default nextConfig
