import { createServer } from 'node:http';
import { createSchema, createYoga } from 'graphql-yoga';

/**
 * The ceiling: yoga over HTTP answering `{ hello }` with no I/O, configured as Quire configures
 * yoga's request path: no body-counting stream (Quire bounds bodies by Content-Length in
 * src/plugins/http-guards.ts). With yoga's default `maxRequestBodySize` this server spent about
 * twice the CPU per request (bench/analysis.md, "The request path's floor, measured again").
 */
const yoga = createYoga({
  schema: createSchema({
    typeDefs: 'type Query { hello: String! }',
    resolvers: { Query: { hello: () => 'world' } },
  }),
  logging: false,
  landingPage: false,
  maxRequestBodySize: false,
});
const server = createServer(yoga);
server.listen(0, '127.0.0.1', () => {
  const address = server.address() as { port: number };
  console.log(`serving GraphQL at http://127.0.0.1:${address.port}/graphql`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
