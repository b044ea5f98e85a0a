export const metadata = { title: 'wattd Next.js fixture' }

export default function RootLayout ({ children }) {
  return (
    <html lang='en'>
      <body>{children}</body>
    </html>
  )
}
