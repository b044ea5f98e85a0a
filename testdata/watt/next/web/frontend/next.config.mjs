/** @type {import('next').NextConfig} */
const nextConfig = {
  agentRules: false
}

export default nextConfig
