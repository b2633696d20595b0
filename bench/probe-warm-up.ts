/**
 * How fast a server just started reaches its steady cost: starts each contender in turn and loads
 * it with shape (1), the user profile, in 1 s windows (autocannon, 20 connections), printing per
 * window the requests answered and the API process's CPU ms per request.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/quire_perf node --import tsx \
 *     bench/probe-warm-up.ts [--windows 12] <checkout>|postgraphile …
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import pg from 'pg';
import { startQuireCheckout } from './probe-server.ts';
import { readShapes } from './scenarios/shapes.queries.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { windows: { type: 'string', default: '12' } },
});
const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/quire_perf';
const admin = new pg.Client(databaseUrl);
await admin.connect();
// The busiest published author, as the probe and the bench choose it.
const { rows } = await admin.query<{ user_id: string }>(
  `select author_id as user_id from posts where status = 'PUBLISHED'
   group by author_id order by count(*) desc limit 1`,
);
await admin.end();
const userId = rows[0]!.user_id;
const profile = readShapes({
  userId,
  userGlobalId: Buffer.from(`User:${userId}`).toString('base64url'),
  postId: '0',
  postGlobalId: '',
  tagName: '',
  tagId: '0',
})[0]!;

/** user + system CPU ticks (1/100 s) of a process so far. */
const cpuTicks = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]);
};

for (const contender of positionals) {
  let child: ChildProcess;
  let url: string;
  if (contender === 'postgraphile') {
    child = spawn('node', ['--import', 'tsx', 'bench/postgraphile/server.ts'], {
      env: { ...process.env, DATABASE_URL: databaseUrl, DB_POOL_SIZE: '10' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const [line] = (await once(child.stdout!, 'data')) as [Buffer];
    url = /http:\/\/\S+/.exec(line.toString())![0];
  } else {
    ({ child, url } = await startQuireCheckout(contender, {
      DATABASE_URL: databaseUrl,
      DB_IDLE_TIMEOUT_MS: '600000',
    }));
  }
  const query = contender === 'postgraphile' ? profile.postgraphile : profile.quire;
  const windows: string[] = [];
  for (let window = 0; window < Number(values.windows); window++) {
    const before = cpuTicks(child.pid!);
    const result = await autocannon({
      url,
      connections: 20,
      duration: 1,
      requests: [
        {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ query }),
        },
      ],
    });
    const msPerRequest = ((cpuTicks(child.pid!) - before) * 10) / result.requests.total;
    windows.push(`${result.requests.total}/${msPerRequest.toFixed(2)}`);
  }
  console.log(`${contender}\trequests/API ms per 1 s window: ${windows.join(' ')}`);
  child.kill('SIGTERM');
  await once(child, 'exit');
}
