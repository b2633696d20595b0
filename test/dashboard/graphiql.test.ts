import { mkdirSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HttpServer, httpOptions, startHttpServer } from '../../src/http.ts';
import { PipelineWorker } from '../../src/processing/worker.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { launchChromium } from '../helpers/browser.ts';
import { createPosts, createUser, globalId, localId, type TestUser } from '../helpers/factories.ts';
import { eventTypes, solarArticle, startPipelineMutation } from '../helpers/pipeline.ts';

let app: TestApp;
let http: HttpServer;
let worker: PipelineWorker;
let browser: Browser;
let author: TestUser;

beforeAll(async () => {
  app = await startTestApp({ PIPELINE_STEP_DELAY_MS: '400', PIPELINE_POLL_MS: '50' });
  http = await startHttpServer(app.yoga, httpOptions(app.deps.config, 0));
  worker = new PipelineWorker(app.deps);
  await worker.start();
  author = await createUser(app.deps.db, 'AUTHOR', 'Grace');
  await createPosts(app.deps.db, [
    { authorId: author.id, title: 'Tide pools at low water', status: 'PUBLISHED' },
  ]);
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await worker?.stop();
  await http?.close();
  await app?.close();
});

/** Every request to a host other than 127.0.0.1 is aborted and remembered, as if offline. */
async function offline(page: Page): Promise<string[]> {
  const blocked: string[] = [];
  await page.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === '127.0.0.1') return route.continue();
    blocked.push(url.href);
    return route.abort('internetdisconnected');
  });
  return blocked;
}

/** Replaces the open variables or headers editor's content, as a user pasting it would. */
async function fillEditorTool(page: Page, text: string): Promise<void> {
  await page.click('.graphiql-editor-tool .monaco-editor .view-lines:visible');
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(text);
}

/** Runs one operation of the multi-operation document through the run button's picker. */
async function runOperation(page: Page, name: string): Promise<void> {
  await page.click('button.graphiql-execute-button');
  await page.getByRole('menuitem', { name, exact: true }).click();
}

/** The result pane's visible text; Monaco renders spaces as U+00A0 and wraps long lines. */
const responseText = async (page: Page) =>
  ((await page.textContent('.graphiql-response')) ?? '').replace(/\s+/g, ' ');

describe('GraphiQL offline', () => {
  it('loads, queries and streams a subscription with no request leaving the machine', {
    timeout: 90_000,
  }, async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.setDefaultTimeout(10_000);
    const blocked = await offline(page);
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));

    await page.goto(`http://127.0.0.1:${http.port}/graphql`);
    // The preloaded examples are in the query editor.
    await expect
      .poll(() => page.textContent('.graphiql-query-editor'), { timeout: 20_000 })
      .toContain('LatestPosts');

    await runOperation(page, 'LatestPosts');
    await expect
      .poll(() => responseText(page), { timeout: 10_000 })
      .toContain('Tide pools at low water');
    expect(await responseText(page)).toContain('"totalCount": 1');

    const [draft] = await createPosts(app.deps.db, [
      {
        authorId: author.id,
        title: 'Solar panels on city roofs',
        body: solarArticle,
        status: 'DRAFT',
      },
    ]);
    const started = await app.gql<{ startPipeline: { pipelineRun: { id: string } } }>(
      startPipelineMutation,
      { input: { postId: globalId('Post', draft!.id) } },
      { token: author.token },
    );
    expect(started.errors).toBeUndefined();
    const runId = started.data!.startPipeline.pipelineRun.id;

    await page.getByRole('button', { name: 'Headers' }).click();
    await fillEditorTool(page, JSON.stringify({ Authorization: `Bearer ${author.token}` }));
    await page.getByRole('button', { name: 'Variables' }).click();
    await fillEditorTool(page, JSON.stringify({ runId }));
    await runOperation(page, 'WatchRun');

    // Each event replaces the last in the result pane: collect the sequence numbers shown, and
    // whether one arrived while the run was still going (live, not only replayed at the end).
    const sequences = new Set<number>();
    let sawRunning = false;
    mkdirSync('test-results', { recursive: true });
    let captured = false;
    for (let wait = 0; wait < 400; wait += 1) {
      const text = await responseText(page);
      const sequence = /"sequence": (\d+)/.exec(text)?.[1];
      if (sequence) sequences.add(Number(sequence));
      sawRunning ||= text.includes('"runStatus": "RUNNING"');
      if (!captured && sequences.size >= 3) {
        await page.screenshot({ path: 'test-results/graphiql-offline-watch-run.png' });
        captured = true;
      }
      if (text.includes('"runStatus": "SUCCEEDED"')) break;
      await page.waitForTimeout(50);
    }
    expect(await responseText(page)).toContain('"runStatus": "SUCCEEDED"');
    expect(sequences.size).toBeGreaterThanOrEqual(3);
    expect(sawRunning).toBe(true);
    expect(captured).toBe(true);
    // The last event shown is the run's last stored event.
    const stored = await eventTypes(app.deps.db, localId(runId));
    expect(Math.max(...sequences)).toBe(stored.length);
    expect(stored.at(-1)).toBe('run.succeeded');

    expect(pageErrors).toEqual([]);
    expect(blocked).toEqual([]);
    await page.screenshot({ path: 'test-results/graphiql-offline.png' });
    await page.close();
  });
});
