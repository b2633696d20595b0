import { fileURLToPath } from 'node:url';
import type { Db } from '../../src/db/database.ts';
import { subscribeMany } from '../fanout.ts';
import {
  commands,
  cpuMicroseconds,
  databaseName,
  databaseUrl,
  fanoutDeadlineMs,
  fanoutSizes,
  fanoutTransports,
  flags,
  log,
  redisPrefix,
  redisUrl,
  request,
  rssKibibytes,
  spawn,
} from '../harness.ts';

/**
 * The fan-out table: for each transport and size, N subscribers to one run's events, then a
 * worker runs the pipeline. Besides latency it reports the API's memory per held subscriber (RSS
 * once all are connected, minus RSS before they connected, over N) and its CPU time per delivered
 * event (user + system time from the worker's start to the last delivery, over the deliveries).
 */
export async function measureFanout(db: Db, authorId: string, token: string): Promise<void> {
  log(
    '## Subscription fan-out (one API instance, events from a separate worker via Redis; each subscriber on its own connection)\n',
  );
  log(
    '| transport | subscribers | connected | live events delivered | delivery p50 ms | delivery p99 ms | API KiB per subscriber | API CPU µs per delivered event | harness CPU µs per delivered event |\n|---|---|---|---|---|---|---|---|---|',
  );
  const fanoutPrefix = redisPrefix('fanout');
  const apiEnv = {
    WORKER: 'off',
    REDIS_URL: redisUrl,
    REDIS_PREFIX: fanoutPrefix,
    DATABASE_URL: databaseUrl(databaseName),
    CACHE: 'off',
    WS_INIT_TIMEOUT_MS: '60000',
    ...(flags.profile
      ? {
          NODE_OPTIONS: `--import ${fileURLToPath(new URL('../cpu-profile.mjs', import.meta.url))}`,
          CPU_PROFILE_DIR: flags.profile,
        }
      : {}),
  };
  const workerEnv = {
    REDIS_URL: redisUrl,
    REDIS_PREFIX: fanoutPrefix,
    DATABASE_URL: databaseUrl(databaseName),
    PIPELINE_STEP_DELAY_MS: '40',
    PIPELINE_POLL_MS: '100',
  };
  const heldWithinTarget: Record<string, number> = {};
  const atThousand: Record<string, string> = {};
  for (const transport of fanoutTransports) {
    heldWithinTarget[transport] = 0;
    for (const subscribers of fanoutSizes) {
      // A fresh API per size: its memory before the subscribers is the baseline of the next column.
      const api = await spawn(
        'main',
        apiEnv,
        commands.some(([label]) => label === 'fan-out API') ? undefined : 'fan-out API',
      );
      const post = await db
        .insertInto('posts')
        .values({
          author_id: authorId,
          title: `Fan-out ${transport} ${subscribers}`,
          slug: `fan-out-${process.pid}-${transport.replace(/\W/g, '')}-${subscribers}`.toLowerCase(),
          body: 'Solar panels on city roofs. '.repeat(40),
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      const { startPipeline } = await request<{ startPipeline: { pipelineRun: { id: string } } }>(
        {
          url: api.url,
          headers: { authorization: `Bearer ${token}` },
          body: JSON.stringify({
            query:
              'mutation($id: ID!) { startPipeline(input: { postId: $id }) { pipelineRun { id } } }',
            variables: { id: Buffer.from(`Post:${post.id}`).toString('base64url') },
          }),
        },
        'startPipeline',
      );
      const rssBefore = rssKibibytes(api.child.pid);
      const runId = startPipeline.pipelineRun.id;
      const fanout = subscribeMany(transport, api.url, token, runId, subscribers);
      await Promise.race([
        fanout.ready,
        new Promise((resolve) => setTimeout(resolve, Math.max(30_000, subscribers * 12))),
      ]);
      const rssHeld = rssKibibytes(api.child.pid);
      const cpuBefore = cpuMicroseconds(api.child.pid);
      const harnessCpuBefore = process.cpuUsage();
      // A profiled API profiles the deliveries only (bench/cpu-profile.mjs).
      if (flags.profile) api.child.kill('SIGUSR2');
      const worker = await spawn(
        'worker',
        workerEnv,
        commands.some(([label]) => label === 'fan-out worker') ? undefined : 'fan-out worker',
      );
      const result = await fanout.done(fanoutDeadlineMs);
      const cpuPerEvent = (cpuMicroseconds(api.child.pid) - cpuBefore) / Math.max(1, result.events);
      const harnessCpu = process.cpuUsage(harnessCpuBefore);
      const harnessCpuPerEvent = (harnessCpu.user + harnessCpu.system) / Math.max(1, result.events);
      await worker.stop();
      const stored = await db
        .selectFrom('pipeline_events')
        .select((eb) => eb.fn.countAll<string>().as('count'))
        .where('run_id', '=', Buffer.from(runId, 'base64url').toString().split(':')[1]!)
        .executeTakeFirstOrThrow();
      // Every subscriber replays run.queued when it connects; the others arrive live.
      const expected = result.connected * (Number(stored.count) - 1);
      // Why a size fell short, from the API's own warnings (LOG_LEVEL=warn), counted by message.
      const apiWarnings = new Map<string, number>();
      for (const line of api.output().split('\n')) {
        if (!line.startsWith('{')) continue;
        let entry: { msg?: string; err?: unknown };
        try {
          entry = JSON.parse(line);
        } catch {
          continue;
        }
        const what = `${entry.msg}${entry.err ? `: ${JSON.stringify(entry.err).slice(0, 120)}` : ''}`;
        apiWarnings.set(what, (apiWarnings.get(what) ?? 0) + 1);
      }
      // SIGTERM lets a profiled API write its profile; the others need no grace.
      await api.stop(flags.profile ? 'SIGTERM' : 'SIGKILL');
      const held =
        result.connected === subscribers && result.events === expected && result.p99 < 250;
      if (held) heldWithinTarget[transport] = subscribers;
      if (subscribers === 1000)
        atThousand[transport] = `p50 ${result.p50} ms, p99 ${result.p99} ms`;
      log(
        `| ${transport} | ${subscribers} | ${result.connected} | ${result.events.toLocaleString('en')}${result.timedOut ? ` (timed out after ${fanoutDeadlineMs / 1000} s)` : ''} of ${expected.toLocaleString('en')} | ${result.p50} | ${result.p99} | ${Math.round((rssHeld - rssBefore) / Math.max(1, result.connected))} | ${Math.round(cpuPerEvent)} | ${Math.round(harnessCpuPerEvent)} |`,
      );
      if (!held && apiWarnings.size > 0)
        console.error(
          `fan-out ${transport} ${subscribers}: API warnings ${JSON.stringify([...apiWarnings])}`,
        );
    }
  }
  if (Object.keys(atThousand).length > 0)
    log(
      `\nDelivery at N = 1,000: ${Object.entries(atThousand)
        .map(([transport, figures]) => `${transport} ${figures}`)
        .join('; ')}.`,
    );
  log(
    `\nLargest N tried with every subscriber connected, every event delivered and p99 < 250 ms: ${fanoutTransports.map((transport) => `${transport} **${heldWithinTarget[transport] || 'none'}**`).join(', ')}.\n`,
  );
}

/** How the fan-out table is measured, for the report. */
export const fanoutMethod = () =>
  `Fan-out: for each transport and size a fresh API process; N subscribers opened at once by the harness (SSE: one \`node:http\` request each; graphql-ws: one \`createClient\` with \`webSocketImpl\` from \`ws\` each), then a worker is started and runs one pipeline (its steps 40 ms apart); delivery latency = receipt time − the event's \`createdAt\`; memory per subscriber = the API's RSS once all are connected minus its RSS before, over N; CPU per event = the process's user + system time from the worker's start to the last delivery, over the deliveries (the harness parses every subscriber's stream on the same cores); each size may take ${fanoutDeadlineMs / 1000} s.`;
