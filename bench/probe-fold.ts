/**
 * What folding the post page's comment page into the post's statement would cost, at the pg layer
 * alone (no GraphQL): one post by id with its author, and its newest 21 comments with theirs, as
 *  - `two`: the two statements Quire sends today (the comment page a LATERAL over the post id);
 *  - `rows`: one statement, the comments as `json_agg` of each row (row_to_json, columns as text);
 *  - `union`: one statement, the post row and the comment rows in one result (`union all`);
 *  - `arrays`: one statement, the comments as `json_agg` of `json_build_array`, limited before
 *    the authors are joined.
 * 20 concurrent callers on a pool of 10 (as the servers), alternating order over six rounds of
 * 3 s; per call, the client's CPU (process.cpuUsage) and that of its Postgres backends.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/quire_perf node --import tsx \
 *     bench/probe-fold.ts [post id, default: the first with 21 comments]
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';

const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/quire_perf';
const applicationName = `probe-fold-${process.pid}`;
const TIMESTAMPTZ_OID = 1184;
// As Quire's pool: UTC session, timestamps kept as text.
const pool = new pg.Pool({
  connectionString: databaseUrl,
  max: 10,
  application_name: applicationName,
  options: '-c TimeZone=UTC',
  types: {
    getTypeParser: ((oid: number, format?: string) =>
      oid === TIMESTAMPTZ_OID
        ? (value: string) => value
        : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
  },
});
const admin = new pg.Client(databaseUrl);
await admin.connect();
const postId =
  process.argv[2] ??
  (
    await admin.query<{ post_id: string }>(
      'select post_id from comments group by post_id having count(*) >= 21 order by post_id limit 1',
    )
  ).rows[0]!.post_id;

const postColumns =
  'posts.id, posts.author_id, posts.title, posts.slug, posts.status, posts.word_count, posts.reading_minutes, posts.readability_score, posts.seo_score, posts.created_at, posts.updated_at, posts.published_at, posts.body, posts.summary, posts.meta_description, posts.keywords';
const authorColumns =
  'users.email as author_email, users.name as author_name, users.role as author_role, users.created_at as author_created_at';
const onePost =
  'from posts inner join users on users.id = posts.author_id where posts.id = ($1::bigint[])[1]';
const page = 'order by comments.created_at desc, comments.id desc limit 21';
const statements = {
  post: `select ${postColumns}, ${authorColumns} ${onePost}`,
  comments: `select child.*, parent.parent_id from (select ($1::bigint[])[1] as parent_id) as parent inner join lateral (select comments.*, ${authorColumns} from comments inner join users on users.id = comments.author_id where comments.post_id = parent.parent_id ${page}) as child on true`,
  rows: `select ${postColumns}, ${authorColumns}, (select coalesce(json_agg(c), '[]') from (select comments.id::text as id, comments.post_id::text as post_id, comments.author_id::text as author_id, comments.body, comments.created_at::text as created_at, ${authorColumns.replace('users.created_at as', 'users.created_at::text as')} from comments inner join users on users.id = comments.author_id where comments.post_id = posts.id ${page}) c) as comment_page ${onePost}`,
  union: `(select 'post' as kind, ${postColumns}, ${authorColumns}, null::bigint as comment_id, null::text as comment_body, null::timestamptz as comment_created_at, null::bigint as comment_author_id ${onePost}) union all (select 'comment', null::bigint, null::bigint, null::text, null::text, null::text, null::int, null::int, null::real, null::int, null::timestamptz, null::timestamptz, null::timestamptz, null::text, null::text, null::text, null::text[], ${authorColumns}, comments.id, comments.body, comments.created_at, comments.author_id from comments inner join users on users.id = comments.author_id where comments.post_id = ($1::bigint[])[1] ${page})`,
  arrays: `select ${postColumns}, ${authorColumns}, (select coalesce(json_agg(json_build_array(comments.id::text, comments.post_id::text, comments.author_id::text, comments.body, comments.created_at::text, users.email, users.name, users.role, users.created_at::text) order by comments.created_at desc, comments.id desc), '[]') from (select * from comments where comments.post_id = posts.id ${page}) comments inner join users on users.id = comments.author_id) as comment_page ${onePost}`,
};
/** A named (prepared) statement, as Quire's pool sends its compiled ones. */
const run = (name: keyof typeof statements) =>
  pool.query({ name, text: statements[name], values: [[postId]] });
const variants: Record<string, () => Promise<number>> = {
  two: async () => (await run('post')).rows.length + (await run('comments')).rows.length,
  rows: async () => 1 + (await run('rows')).rows[0].comment_page.length,
  union: async () => (await run('union')).rows.length,
  arrays: async () => 1 + (await run('arrays')).rows[0].comment_page.length,
};

const cpuTicks = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]);
};
const backends = async () =>
  (
    await admin.query<{ pid: number }>(
      'select pid from pg_stat_activity where application_name = $1',
      [applicationName],
    )
  ).rows.map((row) => row.pid);
const load = async (call: () => Promise<number>, ms: number) => {
  let calls = 0;
  const end = Date.now() + ms;
  await Promise.all(
    Array.from({ length: 20 }, async () => {
      while (Date.now() < end) {
        await call();
        calls++;
      }
    }),
  );
  return calls;
};

const names = Object.keys(variants);
for (const name of names) console.log(`${name}: ${await variants[name]!()} rows`);
const totals = new Map(names.map((name) => [name, { calls: 0, client: 0, postgres: 0 }]));
console.log(`load average at start: ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
for (let round = 0; round < 6; round++) {
  for (const name of round % 2 === 0 ? names : [...names].reverse()) {
    await load(variants[name]!, 500);
    const pids = await backends();
    const clientBefore = process.cpuUsage();
    const postgresBefore = pids.map(cpuTicks);
    const calls = await load(variants[name]!, 3000);
    const client = process.cpuUsage(clientBefore);
    const total = totals.get(name)!;
    total.calls += calls;
    total.client += (client.user + client.system) / 1000;
    total.postgres +=
      pids.reduce((sum, pid, index) => sum + cpuTicks(pid) - postgresBefore[index]!, 0) * 10;
  }
}
console.log(`load average at end: ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
console.log('variant\tcalls/s\tclient ms/call\tPostgres ms/call\ttotal ms/call');
for (const [name, { calls, client, postgres }] of totals)
  console.log(
    `${name}\t${Math.round(calls / 18)}\t${(client / calls).toFixed(3)}\t${(postgres / calls).toFixed(3)}\t${((client + postgres) / calls).toFixed(3)}`,
  );
await admin.end();
await pool.end();
