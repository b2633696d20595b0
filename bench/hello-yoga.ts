import { createSchema, createYoga } from 'graphql-yoga';

/**
 * The ceiling: yoga answering `{ hello }` with no I/O, configured as Quire configures yoga's
 * request path: no body-counting stream (Quire bounds bodies by Content-Length in
 * src/plugins/http-guards.ts). With yoga's default `maxRequestBodySize` it spent about twice the
 * CPU per request (bench/analysis.md, "The request path's floor, measured again"). Served over
 * HTTP by bench/hello-server.ts, in process by bench/floor-loop.ts.
 */
export const helloYoga = () =>
  createYoga({
    schema: createSchema({
      typeDefs: 'type Query { hello: String! }',
      resolvers: { Query: { hello: () => 'world' } },
    }),
    logging: false,
    landingPage: false,
    maxRequestBodySize: false,
  });
