// A server component that reads the api application over the mesh on
// every request.
export const dynamic = 'force-dynamic'

export default async function Catalog () {
  const res = await fetch('http://api.plt.local/products', { cache: 'no-store' })
  const products = await res.json()
  return (
    <main>
      <h1>Catalog</h1>
      <ul>
        {products.map((p) => <li key={p.id}>{`${p.name}: ${p.price} EUR`}</li>)}
      </ul>
    </main>
  )
}
