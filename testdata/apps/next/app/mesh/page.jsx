// A server component that calls another application of the runtime over
// the mesh, on every request.
export const dynamic = 'force-dynamic'

export default async function Mesh () {
  const res = await fetch('http://express.plt.local/', { cache: 'no-store' })
  const data = await res.json()
  return (
    <main>
      <h1>From the mesh</h1>
      <pre id='mesh'>{JSON.stringify(data)}</pre>
    </main>
  )
}
