// A plain Next.js configuration: wattd needs nothing special from it.
/** @type {import('next').NextConfig} */
const nextConfig = {
  // `next dev` (TestNextDev) writes an AGENTS.md into the app when it runs
  // under a coding agent; the fixture should stay as committed.
  agentRules: false
}

export default nextConfig
