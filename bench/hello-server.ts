import { createServer } from 'node:http';
import { createSchema, createYoga } from 'graphql-yoga';

/** The ceiling: yoga over HTTP answering `{ hello }` with no I/O. */
const yoga = createYoga({
  schema: createSchema({
    typeDefs: 'type Query { hello: String! }',
    resolvers: { Query: { hello: () => 'world' } },
  }),
  logging: false,
  landingPage: false,
});
const server = createServer(yoga);
server.listen(0, '127.0.0.1', () => {
  const address = server.address() as { port: number };
  console.log(`serving GraphQL at http://127.0.0.1:${address.port}/graphql`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
