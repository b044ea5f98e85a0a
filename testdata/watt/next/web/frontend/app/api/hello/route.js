export const dynamic = 'force-dynamic'

export async function GET (request) {
  const name = new URL(request.url).searchParams.get('name') ?? 'world'
  return Response.json({ hello: name, from: 'next' }, { headers: { 'x-handler': 'route' } })
}
