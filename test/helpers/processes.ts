import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  output: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts `src/main.ts`, `src/worker.ts` (as their npm scripts do) or another server script as a
 * real child process (node --import tsx, so a kill reaches the process itself) and, for servers,
 * waits for the line naming its port. `ownProcessGroup` starts it as a terminal's foreground job
 * is, so a signal to its group (`process.kill(-pid)`) is what Ctrl-C sends.
 */
export async function startProcess(
  entry: 'main' | 'worker' | `${string}.ts`,
  env: Record<string, string>,
  options: { ownProcessGroup?: boolean } = {},
): Promise<ServerProcess> {
  const script = entry.endsWith('.ts') ? entry : `src/${entry}.ts`;
  // As `npm start` / `npm run worker`: the tracing preload (idle unless OTEL_* configures it).
  const preload = entry.endsWith('.ts') ? [] : ['--import', './src/instrumentation.ts'];
  const child = spawn(process.execPath, ['--import', 'tsx', ...preload, script], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: 'info', PORT: '0', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.ownProcessGroup ?? false,
  });
  let output = '';
  child.stdout?.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    output += chunk;
  });
  const ready =
    entry === 'worker' ? /pipeline worker started/ : /serving GraphQL.*at (http:\/\/[^ "]+)/;
  // With a fixed port (and a quiet LOG_LEVEL) readiness is /health answering, not the log line.
  const fixedUrl =
    entry === 'main' && env.PORT && env.PORT !== '0'
      ? `http://127.0.0.1:${env.PORT}/graphql`
      : null;
  const isReady = async () =>
    fixedUrl
      ? await fetch(fixedUrl.replace('/graphql', '/health')).then(
          (response) => response.ok,
          () => false,
        )
      : ready.test(output);
  // A start takes seconds; a loaded two-core machine initialising an embedded Postgres, far more.
  const deadline = Date.now() + 45_000;
  while (!(await isReady())) {
    if (child.exitCode !== null) throw new Error(`${entry} exited early:\n${output}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${entry} did not start in time:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    child,
    url: fixedUrl ?? (entry === 'worker' ? '' : ready.exec(output)![1]!),
    output: () => output,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const [code] = (await once(child, 'exit')) as [number | null];
      return code;
    },
  };
}

/** A TCP port on 127.0.0.1 that was free a moment ago: for a child process that must bind one itself. */
export async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  return port;
}
