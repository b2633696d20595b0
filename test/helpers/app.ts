import { createApp, type QuireYoga } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger, type Logger } from '../../src/infra/logger.ts';
import { connectDeps } from '../../src/runtime.ts';
import { createTestDatabase, type TestDatabase } from './database.ts';

export interface GraphQLResponse<Data = Record<string, any>> {
  data?: Data | null;
  errors?: { message: string; path?: (string | number)[]; extensions?: Record<string, any> }[];
  extensions?: Record<string, any>;
}

export interface RequestOptions {
  token?: string;
  debug?: boolean;
  headers?: Record<string, string>;
}

export interface TestApp {
  deps: ReturnType<typeof connectDeps>['deps'];
  yoga: QuireYoga;
  database: TestDatabase;
  /** POSTs an operation through the full yoga pipeline (HTTP semantics, no port needed). */
  gql<Data = Record<string, any>>(
    query: string,
    variables?: Record<string, unknown>,
    options?: RequestOptions,
  ): Promise<GraphQLResponse<Data>>;
  close(): Promise<void>;
}

/**
 * A configured app over its own fresh database; pass `shared` to start a second instance over
 * the same database (and the same Redis namespace), as another server process would be, and
 * `logger` to capture what the app logs.
 */
export async function startTestApp(
  env: Record<string, string> = {},
  shared?: TestApp,
  logger?: Logger,
): Promise<TestApp> {
  const database = shared?.database ?? (await createTestDatabase());
  const config = loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent',
    DATABASE_URL: database.url,
    // Test files run in parallel against one Redis: each database gets its own key space.
    REDIS_PREFIX: `quire-test:${database.name}:`,
    WORKER: 'off',
    // Test files share two busy cores: a 50 ms bound would turn scheduler stalls into cache
    // misses. redis-frozen.test.ts sets the production bound.
    REDIS_COMMAND_TIMEOUT_MS: '1000',
    ...env,
  });
  const { deps, close } = connectDeps(
    config,
    logger ?? createLogger(config),
    config.DATABASE_URL ?? database.url,
  );
  const yoga = createApp(deps);
  return {
    deps,
    yoga,
    database,
    async gql(query, variables, options = {}) {
      const response = await yoga.fetch('http://quire.test/graphql', {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
          ...(options.debug ? { 'x-quire-debug': '1' } : {}),
          ...options.headers,
        },
        body: JSON.stringify({ query, variables }),
      });
      return (await response.json()) as GraphQLResponse<any>;
    },
    async close() {
      await close();
      if (!shared) await database.drop();
    },
  };
}
