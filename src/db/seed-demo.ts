import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import type { AppDeps } from '../context.ts';
import { takenSlugs } from '../modules/post/import/import.repository.ts';
import {
  type ImportProgress,
  type ImportReport,
  importMarkdown,
} from '../modules/post/import/markdown-import.ts';
import { PipelineWorker } from '../processing/worker.ts';
import { loadReadmeCorpus, toMarkdownFile } from './seed-corpus.ts';

export interface DemoReport extends ImportReport {
  /** Corpus documents found; those already imported by an earlier seed are not imported again. */
  documents: number;
  words: number;
  distinctWords: number;
}

/**
 * The default demo data: the installed packages' READMEs (see seed-corpus.ts), imported through
 * the same path as `npm run import`, with a pipeline run queued per post when `process` is set.
 * Running it again imports only documents not imported yet.
 */
export async function seedDemo(
  deps: Pick<AppDeps, 'db' | 'cache'>,
  options: { process: boolean; onProgress?: ImportProgress },
): Promise<DemoReport> {
  const documents = await loadReadmeCorpus();
  const taken = await takenSlugs(
    deps.db,
    documents.map((document) => document.slug),
  );
  const fresh = documents.filter((document) => !taken.has(document.slug));
  const words = documents.flatMap((document) => document.body.match(/[\p{L}\p{N}'’-]+/gu) ?? []);
  const corpus = {
    documents: documents.length,
    words: words.length,
    distinctWords: new Set(words.map((word) => word.toLowerCase())).size,
  };
  if (fresh.length === 0) {
    return {
      ...corpus,
      posts: 0,
      authors: 0,
      tagLinks: 0,
      queuedRuns: 0,
      seconds: 0,
      rowsPerSecond: 0,
    };
  }
  const report = await importMarkdown(deps, fresh.map(toMarkdownFile), {
    defaultAuthor: null,
    process: options.process,
    onProgress: options.onProgress,
  });
  return { ...corpus, ...report };
}

/**
 * Runs a pipeline worker in this process until no run is queued or running (runs of any
 * post: a server's worker may take some of them meanwhile). Reports finished/total.
 */
export async function runPipelineToEnd(
  deps: AppDeps,
  onProgress?: (done: number, total: number) => void,
): Promise<void> {
  const worker = new PipelineWorker(deps);
  await worker.start();
  try {
    let total = 0;
    for (;;) {
      const { rows } = await sql<{ active: string }>`
        select count(*) as active from pipeline_runs where status in ('QUEUED', 'RUNNING')`.execute(
        deps.db,
      );
      const active = Number(rows[0]!.active);
      total = Math.max(total, active);
      onProgress?.(total - active, total);
      if (active === 0) return;
      await sleep(250);
    }
  } finally {
    await worker.stop();
  }
}
