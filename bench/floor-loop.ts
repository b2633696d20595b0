/**
 * The request floor in one process, without sockets: each contender's yoga answers one small
 * request (`{ __typename }` unless `--query`) through `yoga.fetch`, `--inflight` at a time, in
 * rounds of `--requests` that alternate between contenders; per round it reports the process's
 * CPU (`process.cpuUsage()`, user + system) per request, then each contender's median.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/quire_perf flock /tmp/quire-heavy.lock \
 *     node --import tsx bench/floor-loop.ts --rounds 12 --requests 20000 \
 *     before=/work/main now=. now-variant=.:ENV_VAR=value hello
 *
 * A Quire contender is `name=<checkout>[:VAR=value,…]`: that checkout's createApp over its own
 * deps (`CACHE=off`, `WORKER=off`, `LOG_LEVEL=warn`), the variables set in process.env while it
 * is built, so a throwaway copy's createApp may read them (ablations). `hello` is hello-world yoga
 * configured as bench/hello-server.ts. The HTTP layer is not in this figure: compare contenders
 * here, and confirm over HTTP with bench/probe-small-requests.ts.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { helloYoga } from './hello-yoga.ts';
import { parseContender, probeEnv } from './probe-server.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string', default: '12' },
    requests: { type: 'string', default: '20000' },
    inflight: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '20000' },
    query: { type: 'string', default: '{ __typename }' },
  },
});
const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/quire_perf';
const body = JSON.stringify({ query: values.query });
const headers = {
  'content-type': 'application/json',
  'content-length': String(Buffer.byteLength(body)),
  accept: 'application/graphql-response+json, application/json',
};

type Fetch = (url: string, init: RequestInit) => Promise<Response> | Response;
interface Contender {
  name: string;
  fetch: Fetch;
  close(): Promise<void>;
  perRequest: number[];
}

async function start(spec: string): Promise<Contender> {
  if (spec === 'hello') {
    return { name: spec, fetch: helloYoga().fetch, close: async () => {}, perRequest: [] };
  }
  const { name, checkout: path, env: extra } = parseContender(spec);
  const checkout = resolve(path);
  const env = {
    ...process.env,
    ...probeEnv,
    DATABASE_URL: databaseUrl,
    RATE_LIMIT_MUTATIONS: '100000000',
    ...extra,
  };
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const { loadConfig } = await import(`${checkout}/src/config.ts`);
    const { createLogger } = await import(`${checkout}/src/infra/logger.ts`);
    const { connectDeps } = await import(`${checkout}/src/runtime.ts`);
    const { createApp } = await import(`${checkout}/src/app.ts`);
    const config = loadConfig(env);
    const logger = createLogger(config);
    const { deps, close } = connectDeps(config, logger, databaseUrl);
    const yoga = createApp(deps);
    return { name, fetch: yoga.fetch, close, perRequest: [] };
  } finally {
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
    Object.assign(process.env, saved);
  }
}

/** `count` requests, `inflight` at a time; throws on any answer that is not a 200 with data. */
async function load(contender: Contender, count: number): Promise<void> {
  let sent = 0;
  const worker = async () => {
    while (sent < count) {
      sent++;
      const response = await contender.fetch('http://localhost/graphql', {
        method: 'POST',
        headers,
        body,
      });
      const text = await response.text();
      if (response.status !== 200 || !text.startsWith('{"data"'))
        throw new Error(`${contender.name} answered ${response.status}: ${text}`);
    }
  };
  await Promise.all(Array.from({ length: Number(values.inflight) }, worker));
}

const median = (numbers: number[]) => {
  const sorted = [...numbers].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

const contenders: Contender[] = [];
for (const spec of positionals) contenders.push(await start(spec));
for (const contender of contenders) await load(contender, Number(values.warmup));
const requests = Number(values.requests);
for (let round = 0; round < Number(values.rounds); round++) {
  const order = round % 2 === 0 ? contenders : [...contenders].reverse();
  const line: string[] = [];
  for (const contender of order) {
    // A collection now rather than inside the next contender's window.
    globalThis.gc?.();
    const before = process.cpuUsage();
    await load(contender, requests);
    const used = process.cpuUsage(before);
    const ms = (used.user + used.system) / 1000 / requests;
    contender.perRequest.push(ms);
    line.push(`${contender.name} ${ms.toFixed(4)}`);
  }
  console.log(`round ${round + 1}: ${line.join('  ')}`);
}
console.log('\nCPU ms per request, median of rounds (min–max):');
for (const contender of contenders) {
  const all = contender.perRequest;
  console.log(
    `  ${contender.name.padEnd(20)} ${median(all).toFixed(4)}  (${Math.min(...all).toFixed(4)}–${Math.max(...all).toFixed(4)})`,
  );
}
await Promise.all(contenders.map((contender) => contender.close()));
process.exit(0);
