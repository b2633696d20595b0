/**
 * A quick side-by-side probe of small requests: servers named on the command line, all running
 * at once over one database, loaded in turn (autocannon, 20 connections) for several rounds in
 * alternating order. Per request it reports the API process's CPU and that of the Postgres
 * backends it is connected to (user + system time from /proc/<pid>/stat).
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/quire_perf node --import tsx \
 *     bench/probe-small-requests.ts --seconds 4 --rounds 3 \
 *     main=/work/main branch=. branch-unprepared=.:DB_PREPARED_STATEMENTS=off postgraphile
 *
 * A Quire contender is `name=<checkout>[:VAR=value,…]`, started from that checkout with
 * `CACHE=off WORKER=off`; `postgraphile` starts bench/postgraphile/server.ts, `hello` starts
 * bench/hello-server.ts (yoga answering `{ hello }` for every shape: the ceiling). The database needs
 * `npm run seed -- --posts …`; the probe adds a bench author with a token and 25 comments on one
 * post (the post page shape). Before the first round each contender runs each shape for
 * `--prewarm` seconds (3 unless given; 0 measures servers just started).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import pg from 'pg';
import { generateToken, hashToken } from '../src/modules/auth/token.ts';
import { parseContender, startQuireCheckout } from './probe-server.ts';
import {
  postgraphileCreatePost,
  postgraphileTagPosts,
  quireCreatePost,
  readShapes,
} from './scenarios/shapes.queries.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    seconds: { type: 'string', default: '4' },
    warmup: { type: 'string', default: '1' },
    // Load per shape and contender before the first round: a server just started runs unoptimised
    // code for its first seconds of load, which the first round would otherwise measure.
    prewarm: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '20' },
    shapes: { type: 'string' },
    profile: { type: 'string' },
  },
});
const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/quire_perf';
const ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

interface Contender {
  name: string;
  kind: 'quire' | 'postgraphile' | 'hello';
  child: ChildProcess;
  url: string;
}

async function start(spec: string): Promise<Contender> {
  if (spec === 'postgraphile' || spec === 'hello') {
    const script = spec === 'hello' ? 'bench/hello-server.ts' : 'bench/postgraphile/server.ts';
    const args = ['--import', 'tsx', script];
    if (values.profile) args.unshift(`--cpu-prof`, `--cpu-prof-dir=${values.profile}/${spec}`);
    const child = spawn('node', args, {
      env: { ...process.env, DATABASE_URL: databaseUrl, DB_POOL_SIZE: '10' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const [line] = (await once(child.stdout!, 'data')) as [Buffer];
    const url = /http:\/\/\S+/.exec(line.toString())![0];
    return { name: spec, kind: spec, child, url };
  }
  const { name, checkout, env: extra } = parseContender(spec);
  const env: Record<string, string> = {
    DATABASE_URL: databaseUrl,
    DB_IDLE_TIMEOUT_MS: '600000',
    RATE_LIMIT_MUTATIONS: '100000000',
    ...extra,
  };
  const profileDir = values.profile ? `${values.profile}/${name}` : undefined;
  const { child, url } = await startQuireCheckout(checkout, env, profileDir);
  return { name, kind: 'quire', child, url };
}

function cpuTicks(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/** The Postgres backend pids serving a process: matched by the client port of its sockets. */
async function backendsOf(admin: pg.Client, pid: number): Promise<number[]> {
  const inodes = new Set(
    readdirSync(`/proc/${pid}/fd`)
      .map((fd) => {
        try {
          return /socket:\[(\d+)\]/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
        } catch {
          return undefined;
        }
      })
      .filter((inode): inode is string => inode !== undefined),
  );
  const ports = readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields[9] && inodes.has(fields[9]) && fields[2]?.endsWith(':1538'))
    .map((fields) => Number.parseInt(fields[1]!.split(':')[1]!, 16));
  const { rows } = await admin.query<{ pid: number }>(
    'select pid from pg_stat_activity where client_port = any($1)',
    [ports],
  );
  return rows.map((row) => row.pid);
}

const admin = new pg.Client({ connectionString: databaseUrl });
await admin.connect();
const author = await admin.query<{ id: string }>(
  `insert into users (email, name, role) values ('probe@example.com', 'Probe', 'AUTHOR')
   on conflict ((lower(email))) do update set name = excluded.name returning id`,
);
const authorId = author.rows[0]!.id;
const token = generateToken();
await admin.query(`insert into api_tokens (user_id, name, token_hash) values ($1, 'probe', $2)`, [
  authorId,
  hashToken(token),
]);
const post = await admin.query<{ id: string }>(
  `select id from posts where status = 'PUBLISHED' order by id limit 1`,
);
const postId = post.rows[0]!.id;
await admin.query(
  `insert into comments (post_id, author_id, body, created_at)
   select $1, (select min(id) from users) + c, 'Probe comment ' || c, now() - (c || ' minutes')::interval
   from generate_series(1, 25 - (select count(*) from comments where post_id = $1)::int) c`,
  [postId],
);
const postGlobalId = Buffer.from(`Post:${postId}`).toString('base64url');
// The everyday shapes' own texts (profile, tag page, feed) over the busiest author and tag.
const busiest = await admin.query<{ user_id: string; tag_id: string; tag_name: string }>(
  `select (select author_id from posts where status = 'PUBLISHED' group by author_id
             order by count(*) desc limit 1) as user_id,
          t.id as tag_id, t.name as tag_name
   from tags t join post_tags pt on pt.tag_id = t.id group by t.id order by count(*) desc limit 1`,
);
const { user_id: userId, tag_id: tagId, tag_name: tagName } = busiest.rows[0]!;
const everyday = readShapes({
  userId,
  userGlobalId: Buffer.from(`User:${userId}`).toString('base64url'),
  postId,
  postGlobalId,
  tagName,
  tagId,
});
// PostGraphile's tag page field, created before it introspects the database (as the bench does).
await admin.query(postgraphileTagPosts);
const everydayShape = (prefix: string) => {
  const { quire, postgraphile } = everyday.find((shape) => shape.name.startsWith(prefix))!;
  return { quire, postgraphile };
};
let sequence = 0;

/** A request body: the query text alone, or (`variables`) a fixed document with its variables. */
type ShapeText = string | (() => string | { query: string; variables: Record<string, unknown> });

const shapes: Record<string, { quire: ShapeText; postgraphile: ShapeText; auth?: boolean }> = {
  // No I/O: what each server's request path costs on its own.
  typename: { quire: '{ __typename }', postgraphile: '{ __typename }' },
  list: {
    quire: '{ posts(first: 10) { edges { node { id title } } } }',
    postgraphile:
      '{ allPosts(first: 10, orderBy: CREATED_AT_DESC, condition: { status: "PUBLISHED" }) { nodes { id title } } }',
  },
  byId: {
    quire: `{ post(id: "${postGlobalId}") { title author { name } } }`,
    postgraphile: `{ postById(id: "${postId}") { title userByAuthorId { name } } }`,
  },
  page: {
    quire: `{ post(id: "${postGlobalId}") { title body author { name } comments(first: 20) { edges { node { body author { name } } } } } }`,
    postgraphile: `{ postById(id: "${postId}") { title body userByAuthorId { name } commentsByPostId(first: 20, orderBy: CREATED_AT_DESC) { nodes { body userByAuthorId { name } } } } }`,
  },
  profile: everydayShape('(1)'),
  post: everydayShape('(2)'),
  tag: everydayShape('(3)'),
  feed: everydayShape('(5)'),
  // The profile with each post's tags: an author's walk, free of the front page's drafts.
  profileTags: {
    quire: `{ node(id: "${Buffer.from(`User:${userId}`).toString('base64url')}") { ... on User { name posts(first: 10) { edges { node { id title tags { name } } } } } } }`,
    postgraphile: `{ userById(id: "${userId}") { name postsByAuthorId(first: 10, orderBy: [CREATED_AT_DESC, ID_DESC], condition: { status: "PUBLISHED" }) { nodes { id title postTagsByPostId { nodes { tagByTagId { name } } } } } } }`,
  },
  // The list and the feed signed in as the probe's author (no posts of its own): Quire merges the
  // published posts with the viewer's own (mergesWalks); PostGraphile lists the published ones.
  memberList: {
    auth: true,
    quire: '{ posts(first: 10) { edges { node { id title } } } }',
    postgraphile:
      '{ allPosts(first: 10, orderBy: CREATED_AT_DESC, condition: { status: "PUBLISHED" }) { nodes { id title } } }',
  },
  memberFeed: { auth: true, ...everydayShape('(5)') },
  create: {
    auth: true,
    quire: () =>
      `mutation { createPost(input: { title: "Probe post ${process.pid} ${++sequence}", body: "x" }) { post { id } } }`,
    postgraphile: () =>
      `mutation { createPost(input: { post: { authorId: "${authorId}", title: "Probe ${process.pid} ${++sequence}", slug: "probe-${process.pid}-${sequence}", body: "x" } }) { post { id } } }`,
  },
  // Shape (6) as the bench sends it: one document, the title (and PostGraphile's slug) in variables.
  createVars: {
    auth: true,
    quire: () => quireCreatePost(++sequence),
    postgraphile: () => postgraphileCreatePost(authorId)(++sequence),
  },
};
const chosen = values.shapes ? values.shapes.split(',') : Object.keys(shapes);

const contenders: Contender[] = [];
for (const spec of positionals) contenders.push(await start(spec));
const load = (contender: Contender, shape: string, seconds: number) => {
  const { quire, postgraphile, auth } = shapes[shape]!;
  // The hello-world contender answers `{ hello }` whatever the shape: the ceiling to compare with.
  const text =
    contender.kind === 'hello' ? '{ hello }' : contender.kind === 'quire' ? quire : postgraphile;
  const body = (query: string | { query: string }) =>
    JSON.stringify(typeof query === 'string' ? { query } : query);
  return autocannon({
    url: contender.url,
    connections: Number(values.connections),
    duration: seconds,
    requests: [
      {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(auth && contender.kind === 'quire' ? { authorization: `Bearer ${token}` } : {}),
        },
        ...(typeof text === 'string'
          ? { body: body(text) }
          : {
              setupRequest: (request: Record<string, unknown>) => ({
                ...request,
                body: body(text()),
              }),
            }),
      },
    ],
  });
};

const totals = new Map<
  string,
  { requests: number; seconds: number; api: number; db: number; non2xx: number }
>();
if (Number(values.prewarm) > 0)
  for (const contender of contenders) {
    for (const shape of chosen) await load(contender, shape, Number(values.prewarm));
  }
console.log(`load average at start: ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
for (let round = 0; round < Number(values.rounds); round++) {
  const order = round % 2 === 0 ? contenders : [...contenders].reverse();
  for (const shape of chosen) {
    for (const contender of order) {
      await load(contender, shape, Number(values.warmup));
      const pid = contender.child.pid!;
      const backends = await backendsOf(admin, pid);
      const apiBefore = cpuTicks(pid);
      const dbBefore = backends.map(cpuTicks);
      const result = await load(contender, shape, Number(values.seconds));
      const api = cpuTicks(pid) - apiBefore;
      const db = backends.reduce(
        (sum, backend, index) => sum + cpuTicks(backend) - dbBefore[index]!,
        0,
      );
      const key = `${shape}\t${contender.name}`;
      const total = totals.get(key) ?? { requests: 0, seconds: 0, api: 0, db: 0, non2xx: 0 };
      total.requests += result.requests.total;
      total.seconds += Number(values.seconds);
      total.api += api;
      total.db += db;
      total.non2xx += result.non2xx + result.errors;
      totals.set(key, total);
    }
  }
}
console.log(`load average at end: ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
console.log('shape\tcontender\treq/s\tAPI ms CPU/req\tPostgres ms CPU/req\tfailures');
for (const [key, total] of totals) {
  const perRequest = (ticks: number) => ((ticks / ticksPerSecond) * 1000) / total.requests;
  console.log(
    `${key}\t${(total.requests / total.seconds).toFixed(0)}\t${perRequest(total.api).toFixed(3)}\t${perRequest(total.db).toFixed(3)}\t${total.non2xx}`,
  );
}
for (const contender of contenders) contender.child.kill('SIGTERM');
await admin.end();
