import { createServer } from 'node:http';
import pg from 'pg';
import { postgraphile } from 'postgraphile';

/** PostGraphile v4 (the version that runs on Node 20) over the same tables. */
const pool = new pg.Pool({
  connectionString: process.env.DATABASE_URL,
  max: Number(process.env.DB_POOL_SIZE ?? 10),
});
const middleware = postgraphile(pool, 'public', {
  graphqlRoute: '/graphql',
  disableQueryLog: true,
  retryOnInitFail: false,
  dynamicJson: true,
  setofFunctionsContainNulls: false,
  ignoreRBAC: true,
});
const server = createServer(middleware);
server.listen(0, '127.0.0.1', () => {
  const address = server.address() as { port: number };
  console.log(`serving GraphQL at http://127.0.0.1:${address.port}/graphql`);
});
process.on('SIGTERM', () => server.close(() => pool.end().then(() => process.exit(0))));
