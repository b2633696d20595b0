import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dashboardManifestFile } from '../../src/dashboard/manifest.ts';
import { type HttpServer, httpOptions, startHttpServer } from '../../src/http.ts';
import { PipelineWorker } from '../../src/processing/worker.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { launchChromium } from '../helpers/browser.ts';
import { createPosts, createUser, globalId, type TestUser } from '../helpers/factories.ts';
import { solarArticle, startPipelineMutation } from '../helpers/pipeline.ts';

const TRUSTED_DOCUMENTS = fileURLToPath(dashboardManifestFile);

let browser: Browser;

beforeAll(async () => {
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
});

// The dashboard sends its operations by hash: an APQ server learns them on first use, a server in
// trusted-documents mode runs them from the committed manifest and would refuse anything else.
describe.each([
  ['automatic persisted queries', {}],
  ['trusted documents', { TRUSTED_DOCUMENTS }],
])('pipeline dashboard (%s)', (_mode, env) => {
  let app: TestApp;
  let http: HttpServer;
  let worker: PipelineWorker;
  let author: TestUser;
  /** An instance without a manifest over the same database, for operations the dashboard lacks. */
  let elsewhere: TestApp;

  beforeAll(async () => {
    app = await startTestApp({ PIPELINE_STEP_DELAY_MS: '150', PIPELINE_POLL_MS: '50', ...env });
    http = await startHttpServer(app.yoga, httpOptions(app.deps.config, 0));
    worker = new PipelineWorker(app.deps);
    await worker.start();
    elsewhere = await startTestApp({}, app);
    author = await createUser(app.deps.db, 'AUTHOR', 'Ada');
    await createPosts(app.deps.db, [
      {
        authorId: author.id,
        title: 'Solar panels on city roofs',
        body: solarArticle,
        status: 'DRAFT',
      },
    ]);
  });

  afterAll(async () => {
    await elsewhere?.close();
    await worker?.stop();
    await http?.close();
    await app?.close();
  });

  it('starts a pipeline and shows its progress live, then the summary and tags', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(`http://127.0.0.1:${http.port}/`);
    await page.fill('#token', author.token);
    await page.click('#token-form button[type=submit]');
    await expect.poll(() => page.textContent('#viewer')).toBe('Ada · AUTHOR');

    await page.click('#posts button:has-text("Solar panels on city roofs")');
    await expect.poll(() => page.textContent('#detail-status')).toBe('DRAFT');
    const navigations: string[] = [];
    page.on('framenavigated', (frame) => navigations.push(frame.url()));
    await page.click('#start');

    const seen = new Set<number>();
    const readProgress = async () => Number(await page.getAttribute('#progress', 'aria-valuenow'));
    mkdirSync('test-results', { recursive: true });
    let captured = false;
    for (let wait = 0; wait < 300; wait += 1) {
      const progress = await readProgress();
      seen.add(progress);
      if (!captured && progress >= 30 && progress < 100) {
        await page.screenshot({ path: 'test-results/dashboard-mid-run.png' });
        captured = true;
      }
      if (progress === 100) break;
      await page.waitForTimeout(50);
    }
    expect([...seen].some((value) => value > 0 && value < 100)).toBe(true);
    expect(await readProgress()).toBe(100);
    expect(captured).toBe(true);

    await expect
      .poll(() => page.textContent('#message'), { timeout: 10_000 })
      .toBe('Run succeeded.');
    expect(await page.textContent('#summary')).toContain('Solar');
    expect(
      await page.$$eval('#tags li', (items) => items.map((item) => item.textContent)),
    ).toContain('solar');
    expect(await page.textContent('#detail-status')).toBe('REVIEW');
    // Everything arrived over the subscription: the page never reloaded.
    expect(navigations).toEqual([]);
    await page.screenshot({ path: 'test-results/dashboard-done.png' });
  });

  it('follows a run started elsewhere live when its post is opened mid-run', async () => {
    const [post] = await createPosts(app.deps.db, [
      { authorId: author.id, title: 'Wind farms at sea', body: solarArticle, status: 'DRAFT' },
    ]);
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${http.port}/`);
    await page.fill('#token', author.token);
    await page.click('#token-form button[type=submit]');
    await expect.poll(() => page.textContent('#viewer')).toBe('Ada · AUTHOR');
    // Another client of the same database: a trusted-documents server would refuse this text.
    const started = await elsewhere.gql(
      startPipelineMutation,
      { input: { postId: globalId('Post', post!.id) } },
      { token: author.token },
    );
    expect(started.errors).toBeUndefined();
    await page.click('#posts button:has-text("Wind farms at sea")');
    const readProgress = async () => Number(await page.getAttribute('#progress', 'aria-valuenow'));
    await expect.poll(readProgress, { timeout: 15_000 }).toBeGreaterThan(0);
    expect(await readProgress()).toBeLessThan(100);
    await expect
      .poll(() => page.textContent('#message'), { timeout: 15_000 })
      .toBe('Run succeeded.');
    expect(await readProgress()).toBe(100);
    expect(await page.textContent('#detail-status')).toBe('REVIEW');
    await page.close();
  });
});
