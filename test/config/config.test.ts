import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';

describe('configuration', () => {
  it('lists every invalid variable in one error', () => {
    const load = () =>
      loadConfig({ PORT: 'eighty', DB_POOL_SIZE: '-1', WORKER: 'maybe', REDIS_URL: 'nope' });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(/PORT[\s\S]*DB_POOL_SIZE[\s\S]*REDIS_URL[\s\S]*WORKER/);
  });

  it('is frozen, with documented defaults', () => {
    const config = loadConfig({});
    expect(Object.isFrozen(config)).toBe(true);
    expect(config).toMatchObject({ PORT: 4000, MAX_PAGE_SIZE: 100, WORKER: true, CACHE: true });
    expect(config.DATABASE_URL).toBeUndefined();
  });

  it('reads CORS_ORIGINS as exact origins and refuses anything else', () => {
    expect(loadConfig({}).CORS_ORIGINS).toEqual([]);
    expect(
      loadConfig({ CORS_ORIGINS: 'https://app.example, http://localhost:3000,' }).CORS_ORIGINS,
    ).toEqual(['https://app.example', 'http://localhost:3000']);
    for (const bad of [
      '*',
      'app.example',
      'https://app.example/',
      'https://a.example/x',
      'ftp://a.example',
    ])
      expect(() => loadConfig({ CORS_ORIGINS: bad }), bad).toThrow(/CORS_ORIGINS/);
  });

  it('reads REDIS_URL as one server or a Redis Cluster and refuses anything else', () => {
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379' }).REDIS_URL).toBe(
      'redis://127.0.0.1:6379',
    );
    expect(
      loadConfig({ REDIS_URL: 'redis+cluster://u:p@10.0.0.1:7000,[::1]:7001' }).REDIS_URL,
    ).toBe('redis+cluster://u:p@10.0.0.1:7000,[::1]:7001');
    for (const bad of [
      'http://127.0.0.1:6379',
      'redis+cluster://10.0.0.1',
      'redis+cluster://10.0.0.1:7000,',
      'redis+cluster://10.0.0.1:7000/2',
    ])
      expect(() => loadConfig({ REDIS_URL: bad }), bad).toThrow(/REDIS_URL/);
  });

  it('refuses a short METRICS_TOKEN and a METRICS_PORT out of range', () => {
    expect(() => loadConfig({ METRICS_TOKEN: 'short', METRICS_PORT: '70000' })).toThrow(
      /METRICS_PORT[\s\S]*METRICS_TOKEN/,
    );
  });

  it('makes the server exit 1 with one clear message naming the variable', () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      env: { ...process.env, PORT: 'eighty' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('Invalid configuration');
    expect(result.stderr).toContain('PORT');
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });
});
