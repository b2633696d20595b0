/**
 * Preloaded before the app (`node --import tsx --import ./src/instrumentation.ts …`, as the npm
 * scripts do): starts tracing when the OTEL_* variables ask for it (see startTracing), before any
 * module that imports `pg`, `ioredis` or `node:http` is loaded, so their instrumentation applies.
 */
import { startTracing } from './tracing.ts';

await startTracing(process.env);
