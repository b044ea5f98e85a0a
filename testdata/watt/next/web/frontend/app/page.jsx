export default function Home () {
  return (
    <main>
      <h1>Next.js inside Watt</h1>
      <p>A static page, rendered at build time.</p>
    </main>
  )
}
