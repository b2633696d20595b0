import {
  type Bench,
  checkOnce,
  header,
  log,
  ratio,
  row,
  rssMegabytes,
  timing,
  writeConnections,
} from '../harness.ts';
import { type Measurement, measure, type Workload } from '../load.ts';
import { type GraphQlRequest, postgraphileCreatePost, quireCreatePost } from './shapes.queries.ts';
import type { Queries } from './side-by-side.ts';

let sequence = 0;

/** A createPost per request, each with a unique title (and slug where the client supplies it). */
export const creating = (
  url: string,
  headers: Record<string, string>,
  request: (sequence: number) => GraphQlRequest,
): Workload => ({
  url,
  headers,
  body: '',
  setupRequest: (params: Record<string, unknown>) => {
    sequence += 1;
    return { ...params, body: JSON.stringify(request(sequence)) };
  },
});

/** (e): createPost on a few connections while (a) is read on the usual number, Quire then PostGraphile. */
export async function measureCreatePost(bench: Bench, queries: Queries): Promise<void> {
  const { contenders, author, token } = bench;
  const quire = contenders.Quire!;
  log('## (e) createPost under concurrent reads of (a)\n');
  log(header);
  const writers: { name: string; create: Workload; read: Workload }[] = [
    {
      name: 'Quire',
      create: creating(quire.url, { authorization: `Bearer ${token}` }, quireCreatePost),
      read: {
        url: quire.url,
        body: JSON.stringify({ query: queries['(a) post by id with author']!('Quire') }),
      },
    },
  ];
  if (contenders.PostGraphile) {
    const { url } = contenders.PostGraphile;
    writers.push({
      name: 'PostGraphile',
      // PostGraphile's generated CRUD mutation: one INSERT, no auth, no cache to invalidate.
      create: creating(url, {}, postgraphileCreatePost(author.id)),
      read: {
        url,
        body: JSON.stringify({ query: queries['(a) post by id with author']!('PostGraphile') }),
      },
    });
  }
  const writeResults: Record<string, { writes: Measurement; reads: Measurement }> = {};
  for (const { name, create, read } of writers) {
    const contender = contenders[name]!;
    await checkOnce(
      { ...create, body: String(create.setupRequest!({}).body) },
      `${name} createPost`,
    );
    const [writes, reads] = await Promise.all([
      measure(create, {
        ...timing,
        connections: writeConnections,
        warmupSeconds: 0,
        counter: contender.counter,
      }),
      measure(read, { ...timing, warmupSeconds: 0 }),
    ]);
    writeResults[name] = { writes, reads };
    log(row(`${name} createPost`, writes, rssMegabytes(contender.pid)));
    log(row(`${name} (a) reads meanwhile`, reads, rssMegabytes(contender.pid)));
  }
  if (writeResults.PostGraphile)
    log(
      `\nQuire's throughput relative to PostGraphile: createPost ${ratio(writeResults.Quire!.writes.requestsPerSecond, writeResults.PostGraphile.writes.requestsPerSecond)}; (a) reads meanwhile ${ratio(writeResults.Quire!.reads.requestsPerSecond, writeResults.PostGraphile.reads.requestsPerSecond)}. Quire's createPost also authenticates the bearer token, rate-limits, derives the slug and invalidates the cache after commit.`,
    );
  log('');
}
