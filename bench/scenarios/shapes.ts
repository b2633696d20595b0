import { sql } from 'kysely';
import {
  type Bench,
  checkOnce,
  cpuMilliseconds,
  log,
  ratio,
  request,
  rounds,
  shapesTiming,
  smoke,
} from '../harness.ts';
import { type Measurement, measure, statementsPerRequest, type Workload } from '../load.ts';
import { creating } from './create-post.ts';
import {
  createPostShape,
  postgraphileCreatePost,
  postgraphileTagPosts,
  quireCreatePost,
  readShapes,
  type ShapeSubjects,
} from './shapes.queries.ts';

const uncached = 'Quire';
const cached = 'Quire + Redis cache (warm)';
const hello = 'hello-world yoga';
/** The small read that hello-world yoga joins as the ceiling. */
const smallRead = '(4) ten-item list: id and title';

/**
 * Seconds of load per read shape and contender before the first measured line. A Node server just
 * started runs its request path unoptimised until V8 has tiered it up: in 1 s windows from a
 * fresh start, uncached Quire took about 10 s of load to fall from 1.8–2.1 to 0.75 ms of API CPU
 * per profile request, PostGraphile about 6 s (bench/analysis.md). Without this pass the shapes
 * measured first, (1) and (2), measured that start-up rather than the steady state.
 */
const warmUpSeconds = 3;

/** One line of the table: the load figures plus CPU per request of the API and its backends. */
interface ShapeMeasurement extends Measurement {
  apiCpuMs: number;
  /** null for a contender without a database (hello-world yoga). */
  postgresCpuMs: number | null;
}

/**
 * Creates PostGraphile's tag-page field in the bench database; call before PostGraphile starts,
 * which reads the schema once.
 */
export async function prepareShapes({ db }: Pick<Bench, 'db'>): Promise<void> {
  await sql.raw(postgraphileTagPosts).execute(db);
}

/**
 * The rows the shapes read: the author with the most published posts, the first published post
 * (given 20 more comments by 20 users, so its page is full) and the tag on the most published
 * posts (about 1,000 at 100,000 posts).
 */
async function findSubjects(bench: Bench): Promise<ShapeSubjects> {
  const { db } = bench;
  const user = await db
    .selectFrom('posts')
    .select(['author_id', (eb) => eb.fn.countAll<string>().as('count')])
    .where('status', '=', 'PUBLISHED')
    .groupBy('author_id')
    .orderBy('count', 'desc')
    .orderBy('author_id')
    .limit(1)
    .executeTakeFirstOrThrow();
  const tag = await db
    .selectFrom('post_tags')
    .innerJoin('posts', 'posts.id', 'post_tags.post_id')
    .innerJoin('tags', 'tags.id', 'post_tags.tag_id')
    .select(['tags.id', 'tags.name', (eb) => eb.fn.countAll<string>().as('count')])
    .where('posts.status', '=', 'PUBLISHED')
    .groupBy(['tags.id', 'tags.name'])
    .orderBy('count', 'desc')
    .orderBy('tags.id')
    .limit(1)
    .executeTakeFirstOrThrow();
  const commenters = await db.selectFrom('users').select('id').orderBy('id').limit(20).execute();
  await db
    .insertInto('comments')
    .values(
      commenters.map((commenter, index) => ({
        post_id: bench.samplePostId,
        author_id: commenter.id,
        body: `Bench comment ${index}: a reply of a few words to the post above.`,
        created_at: new Date(Date.UTC(2026, 0, 1) + index * 60_000).toISOString(),
      })),
    )
    .execute();
  const globalId = (type: string, id: string) => Buffer.from(`${type}:${id}`).toString('base64url');
  return {
    userId: user.author_id,
    userGlobalId: globalId('User', user.author_id),
    postId: bench.samplePostId,
    postGlobalId: bench.postGlobalId,
    tagName: tag.name,
    tagId: tag.id,
  };
}

/** Process ids of the Postgres backends a contender holds now. */
async function backends(bench: Bench, applicationName: string): Promise<number[]> {
  const { rows } = await sql<{ pid: number }>`
    select pid from pg_stat_activity where application_name = ${applicationName}`.execute(bench.db);
  return rows.map((row) => row.pid);
}

/** CPU ms of each process, 0 for one that is gone (a backend closed since the list was taken). */
function cpuOf(pids: number[]): Map<number, number> {
  return new Map(
    pids.map((pid) => {
      try {
        return [pid, cpuMilliseconds(pid)];
      } catch {
        return [pid, 0];
      }
    }),
  );
}

/**
 * Warm-up, then the measured run between two CPU readings of the API process and of the backends
 * tagged with its application_name. A backend opened during the run counts from zero; one closed
 * during it is lost (the pools' 10 s idle timeout is longer than a run, so none closes under load).
 */
async function measureLine(
  bench: Bench,
  workload: Workload,
  pid: number | undefined,
  applicationName: string | null,
): Promise<ShapeMeasurement> {
  if (shapesTiming.warmupSeconds > 0)
    await measure(workload, {
      ...shapesTiming,
      warmupSeconds: 0,
      seconds: shapesTiming.warmupSeconds,
    });
  const apiBefore = cpuMilliseconds(pid);
  const pgBefore = applicationName ? cpuOf(await backends(bench, applicationName)) : null;
  const measured = await measure(workload, { ...shapesTiming, warmupSeconds: 0 });
  const apiCpu = cpuMilliseconds(pid) - apiBefore;
  let postgresCpu: number | null = null;
  if (applicationName && pgBefore) {
    const after = cpuOf(await backends(bench, applicationName));
    postgresCpu = 0;
    for (const [backend, cpu] of after) postgresCpu += cpu - (pgBefore.get(backend) ?? 0);
  }
  const requests = Math.max(1, measured.requests);
  return {
    ...measured,
    apiCpuMs: apiCpu / requests,
    postgresCpuMs: postgresCpu === null ? null : postgresCpu / requests,
  };
}

/** The mean of a line's rounds. */
function combineShape(measurements: ShapeMeasurement[]): ShapeMeasurement {
  const mean = (pick: (m: ShapeMeasurement) => number) =>
    measurements.reduce((sum, m) => sum + pick(m), 0) / measurements.length;
  const postgres = measurements.map((m) => m.postgresCpuMs);
  return {
    requestsPerSecond: Math.round(mean((m) => m.requestsPerSecond)),
    p50: Math.round(mean((m) => m.p50)),
    p99: Math.round(mean((m) => m.p99)),
    requests: measurements.reduce((sum, m) => sum + m.requests, 0),
    failures: measurements.reduce((sum, m) => sum + m.failures, 0),
    statementsPerRequest:
      measurements.findLast((m) => m.statementsPerRequest !== null)?.statementsPerRequest ?? null,
    apiCpuMs: mean((m) => m.apiCpuMs),
    postgresCpuMs: postgres.includes(null) ? null : mean((m) => m.postgresCpuMs ?? 0),
  };
}

/**
 * What a response holds, independent of each schema's field names and nesting: its titles,
 * names, bodies and summaries, and its counts, sorted (tag order differs: Quire sorts by name).
 */
function contentOf(data: unknown): string[] {
  const found: string[] = [];
  const walk = (value: unknown, key: string) => {
    if (Array.isArray(value)) for (const item of value) walk(item, key);
    else if (value && typeof value === 'object')
      for (const [field, child] of Object.entries(value)) walk(child, field);
    else if (['title', 'name', 'body', 'summary', 'totalCount'].includes(key))
      found.push(`${key}=${value}`);
  };
  walk(data, '');
  return found.sort();
}

const milliseconds = (value: number | null) => (value === null ? '—' : value.toFixed(2));

/**
 * The everyday shapes of issue 12, side by side: each shape on uncached Quire, Quire with a warm
 * Redis cache and PostGraphile (and hello-world yoga beside the small read), forward then reverse
 * order over the rounds. Per line: req/s, p50/p99, SQL statements per request (the counting twin),
 * CPU ms per request of the API process and of its Postgres backends (/proc/<pid>/stat, user +
 * system, over the measured run).
 */
export async function measureShapes(bench: Bench): Promise<void> {
  const subjects = await findSubjects(bench);
  const { contenders } = bench;
  log('## Everyday shapes\n');
  log(
    `Six requests a frontend sends (issue 12), each in Quire's and PostGraphile's own schema for the same rows and fields (texts in \`bench/scenarios/shapes.queries.ts\`); ${shapesTiming.connections} connections, ${smoke ? '' : `${warmUpSeconds} s of each read shape on each contender before the first line, then `}${shapesTiming.warmupSeconds} s warm-up, ${shapesTiming.seconds} s measured per line, ${rounds} round${rounds > 1 ? 's (forward, then reverse order; the mean is shown)' : ''}. CPU per request: user + system time (\`/proc/<pid>/stat\`) over the measured run divided by the requests answered, for the API process and for the Postgres backends carrying its \`application_name\`. Subjects: the author with the most published posts, the first published post (20 bench comments added), the tag \`${subjects.tagName}\` (most published posts).\n`,
  );
  const shapes = readShapes(subjects);
  const table: {
    shape: string;
    lines: Map<string, ShapeMeasurement>;
  }[] = [];
  const sameData: string[] = [];
  if (contenders.PostGraphile)
    for (const shape of shapes) {
      const [quire, other] = await Promise.all([
        request(
          { url: contenders[uncached]!.url, body: JSON.stringify({ query: shape.quire }) },
          shape.name,
        ),
        request(
          { url: contenders.PostGraphile.url, body: JSON.stringify({ query: shape.postgraphile }) },
          shape.name,
        ),
      ]);
      const [mine, theirs] = [contentOf(quire), contentOf(other)];
      sameData.push(
        `${shape.name.split(' ')[0]} ${JSON.stringify(mine) === JSON.stringify(theirs) ? `equal (${mine.length} values)` : `**differ** (Quire ${mine.length} values, PostGraphile ${theirs.length})`}`,
      );
    }
  if (!smoke)
    for (const name of [uncached, cached, 'PostGraphile']) {
      const contender = contenders[name];
      if (!contender) continue;
      for (const shape of shapes) {
        const query = name === 'PostGraphile' ? shape.postgraphile : shape.quire;
        await measure(
          { url: contender.url, body: JSON.stringify({ query }) },
          { ...shapesTiming, warmupSeconds: 0, seconds: warmUpSeconds },
        );
      }
    }
  const writeShape = { name: createPostShape, quire: '', postgraphile: '' };
  for (const shape of [...shapes, writeShape]) {
    const entries: {
      name: string;
      workload: Workload;
      pid: number | undefined;
      applicationName: string | null;
      counter?: (typeof contenders)[string]['counter'];
    }[] = [];
    const write = shape === writeShape;
    for (const name of [uncached, cached, 'PostGraphile']) {
      const contender = contenders[name];
      if (!contender) continue;
      const isQuire = name !== 'PostGraphile';
      const workload: Workload = write
        ? isQuire
          ? creating(contender.url, { authorization: `Bearer ${bench.token}` }, quireCreatePost)
          : creating(contender.url, {}, postgraphileCreatePost(bench.author.id))
        : {
            url: contender.url,
            body: JSON.stringify({ query: isQuire ? shape.quire : shape.postgraphile }),
          };
      await checkOnce(
        write ? { ...workload, body: String(workload.setupRequest!({}).body) } : workload,
        `${name} ${shape.name}`,
      );
      entries.push({
        name,
        workload,
        pid: contender.pid,
        applicationName: contender.applicationName,
        counter: contender.counter,
      });
    }
    if (shape.name === smallRead)
      entries.push({
        name: hello,
        workload: { url: bench.hello.url, body: JSON.stringify({ query: '{ hello }' }) },
        pid: bench.hello.child.pid,
        applicationName: null,
      });
    const runs = new Map<string, ShapeMeasurement[]>();
    for (let round = 0; round < rounds; round += 1) {
      for (const entry of round % 2 === 0 ? entries : [...entries].reverse()) {
        const measured = await measureLine(bench, entry.workload, entry.pid, entry.applicationName);
        // Counted once, after the last round, on the twin (sequential requests, no load).
        if (round === rounds - 1 && entry.counter)
          measured.statementsPerRequest = await statementsPerRequest(entry.workload, entry.counter);
        runs.set(entry.name, [...(runs.get(entry.name) ?? []), measured]);
      }
    }
    table.push({
      shape: shape.name,
      lines: new Map(entries.map((entry) => [entry.name, combineShape(runs.get(entry.name)!)])),
    });
  }
  log(
    '| shape | contender | req/s | p50 ms | p99 ms | SQL statements / request | API CPU ms / request | Postgres CPU ms / request | failures |\n|---|---|---|---|---|---|---|---|---|',
  );
  for (const { shape, lines } of table)
    for (const [name, m] of lines)
      log(
        `| ${shape} | ${name} | ${m.requestsPerSecond} | ${m.p50} | ${m.p99} | ${m.statementsPerRequest?.toFixed(2) ?? '—'} | ${milliseconds(m.apiCpuMs)} | ${milliseconds(m.postgresCpuMs)} | ${m.failures} |`,
      );
  log(
    '\nRatios (throughput; CPU per request, API + Postgres, as a multiple of PostGraphile’s):\n\n| shape | Quire / PostGraphile | Quire + cache / PostGraphile | Quire CPU / PostGraphile CPU | Quire + cache / hello-world |\n|---|---|---|---|---|',
  );
  for (const { shape, lines } of table) {
    const quire = lines.get(uncached);
    const warm = lines.get(cached);
    const other = lines.get('PostGraphile');
    const ceiling = lines.get(hello);
    const totalCpu = (m: ShapeMeasurement) => m.apiCpuMs + (m.postgresCpuMs ?? 0);
    log(
      `| ${shape} | ${quire && other ? ratio(quire.requestsPerSecond, other.requestsPerSecond) : 'not run'} | ${warm && other ? ratio(warm.requestsPerSecond, other.requestsPerSecond) : 'not run'} | ${quire && other ? ratio(totalCpu(quire), totalCpu(other)) : 'not run'} | ${warm && ceiling ? ratio(warm.requestsPerSecond, ceiling.requestsPerSecond) : '—'} |`,
    );
  }
  if (sameData.length > 0)
    log(
      `\nSame data, checked once per read shape before the load (titles, names, bodies, summaries and counts of both answers, sorted): ${sameData.join('; ')}.`,
    );
  log(
    `\n${createPostShape}: Quire's mutation authenticates the bearer token, rate-limits (limit raised for the bench), derives the slug and, with the cache on, invalidates after commit; PostGraphile's generated mutation is one INSERT with the author and slug given. Targets (issue 12): every shape uncached ≥ 1.0× PostGraphile, the cached small read ≥ 0.8× hello-world yoga, createPost ≥ 1.0× with and without the cache.\n`,
  );
}
