// A plain Next.js configuration: wattd needs nothing special from it.
/** @type {import('next').NextConfig} */
const nextConfig = {}

export default nextConfig
