import { createServer } from 'node:http';
import { helloYoga } from './hello-yoga.ts';

/** hello-world yoga (bench/hello-yoga.ts) over node:http on a free port: the bench's ceiling. */
const server = createServer(helloYoga());
server.listen(0, '127.0.0.1', () => {
  const address = server.address() as { port: number };
  console.log(`serving GraphQL at http://127.0.0.1:${address.port}/graphql`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
