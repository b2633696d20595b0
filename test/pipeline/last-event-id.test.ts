import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HttpServer, httpOptions, startHttpServer } from '../../src/http.ts';
import { PipelineWorker } from '../../src/processing/worker.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { createUser, globalId, localId, type TestUser } from '../helpers/factories.ts';
import { queueRun, waitForRun } from '../helpers/pipeline.ts';
import { redisUrl } from '../helpers/services.ts';

// An EventSource reconnect repeats its original request and adds `Last-Event-ID`: the stream
// resumes after that event whatever the document calls the argument, or if it has none.

let app: TestApp;
let http: HttpServer;
let worker: PipelineWorker;
let author: TestUser;
let runId: string;
/** The run's event ids, in order. */
let eventIds: string[];

beforeAll(async () => {
  app = await startTestApp({
    REDIS_URL: redisUrl,
    PIPELINE_STEP_DELAY_MS: '1',
    PIPELINE_POLL_MS: '50',
  });
  http = await startHttpServer(app.yoga, httpOptions(app.deps.config, 0));
  author = await createUser(app.deps.db, 'AUTHOR');
  worker = new PipelineWorker(app.deps);
  await worker.start();
  runId = await queueRun(app, author);
  await waitForRun(app.deps.db, localId(runId));
  const rows = await app.deps.db
    .selectFrom('pipeline_events')
    .select('id')
    .where('run_id', '=', localId(runId))
    .orderBy('seq')
    .execute();
  eventIds = rows.map((row) => globalId('PipelineEvent', row.id));
});

afterAll(async () => {
  await worker?.stop();
  await http?.close();
  await app?.close();
});

/** An EventSource-style GET; the sequences of the `next` events, or the first error code. */
async function read(
  query: string,
  variables: Record<string, unknown>,
  lastEventId?: string,
): Promise<{ sequences: number[]; code?: string }> {
  const url = `http://127.0.0.1:${http.port}/graphql?${new URLSearchParams({
    query,
    variables: JSON.stringify(variables),
  })}`;
  const response = await fetch(url, {
    headers: {
      accept: 'text/event-stream',
      authorization: `Bearer ${author.token}`,
      ...(lastEventId === undefined ? {} : { 'last-event-id': lastEventId }),
    },
    signal: AbortSignal.timeout(10_000),
  });
  const payloads = (await response.text())
    .split('\n\n')
    .filter((block) => block.includes('event: next'))
    .map((block) => JSON.parse(/^data: (.*)$/m.exec(block)![1]!));
  return {
    sequences: payloads.flatMap((payload) =>
      payload.data?.pipelineRun ? [payload.data.pipelineRun.sequence as number] : [],
    ),
    code: payloads[0]?.errors?.[0]?.extensions?.code,
  };
}

const sequencesAfter = (index: number) =>
  eventIds.slice(index + 1).map((_, offset) => index + 2 + offset);

describe('Last-Event-ID', () => {
  it('resumes the README subscription, whose variable is $after', async () => {
    const query = `subscription Watch($runId: ID!, $after: ID) {
      pipelineRun(id: $runId, afterEventId: $after) { id sequence }
    }`;
    expect((await read(query, { runId })).sequences).toEqual(sequencesAfter(-1));
    expect((await read(query, { runId }, eventIds[4])).sequences).toEqual(sequencesAfter(4));
  });

  it('resumes when the argument is absent or a literal, and wins over the argument', async () => {
    const absent = `subscription($runId: ID!) { pipelineRun(id: $runId) { sequence } }`;
    expect((await read(absent, { runId }, eventIds[6])).sequences).toEqual(sequencesAfter(6));
    const literal = `subscription { pipelineRun(id: "${runId}", afterEventId: "${eventIds[2]}") { sequence } }`;
    expect((await read(literal, {})).sequences).toEqual(sequencesAfter(2));
    // A reconnect repeats the original argument: the header says how far the stream got.
    expect((await read(literal, {}, eventIds[8])).sequences).toEqual(sequencesAfter(8));
    const variable = `subscription($id: ID!, $from: ID) { pipelineRun(id: $id, afterEventId: $from) { sequence } }`;
    expect((await read(variable, { id: runId, from: eventIds[1] }, eventIds[9])).sequences).toEqual(
      sequencesAfter(9),
    );
  });

  it('refuses a Last-Event-ID that is not an event of the run with BAD_USER_INPUT', async () => {
    const otherRun = await queueRun(app, author);
    const [otherEvent] = await app.deps.db
      .selectFrom('pipeline_events')
      .select('id')
      .where('run_id', '=', localId(otherRun))
      .execute();
    const query = `subscription($runId: ID!) { pipelineRun(id: $runId) { sequence } }`;
    for (const header of [
      'not-an-id',
      globalId('Post', '1'),
      globalId('PipelineEvent', otherEvent!.id),
    ]) {
      expect(await read(query, { runId }, header)).toEqual({
        sequences: [],
        code: 'BAD_USER_INPUT',
      });
    }
  });
});
