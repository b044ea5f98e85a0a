export const dynamic = 'force-dynamic'

export function GET () {
  return Response.json({ from: 'next', pid: process.pid })
}
