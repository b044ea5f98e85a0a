export default function Home () {
  return <h1>Hello from Next.js on wattd</h1>
}
