// Fails before it ever listens, like an app whose database is unreachable.
console.log('connecting to the database...')
console.error('FATAL: could not connect to postgres://db:5432 (ECONNREFUSED)')
process.exit(3)
