import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { sql } from 'kysely';
import type { Db } from '../../../db/database.ts';
import { withPgErrors } from '../../../db/pg-errors.ts';
import { transact } from '../../../db/transaction.ts';
import type { Cache } from '../../../infra/cache.ts';
import { PIPELINE_TAG } from '../../pipeline/pipeline.publish.ts';
import { ALL_USERS_TAG } from '../../user/user.cache.ts';
import { ALL_POSTS_TAG } from '../post.cache.ts';
import { type CheckedNewPost, newPostInput, toImportRows } from '../post.service.ts';
import { takenSlugs } from './import.repository.ts';
import { type ImportRow, writeImport } from './import.service.ts';
import { type MarkdownFile, readMarkdownPost } from './markdown.ts';

/** What is wrong with one file of a refused import. */
export interface FileProblems {
  path: string;
  problems: string[];
}

/** An import that wrote nothing because of these files (every file is checked first). */
export class ImportRefused extends Error {
  constructor(readonly files: FileProblems[]) {
    super(`${files.length} file(s) cannot be imported; nothing was written`);
  }
}

export interface ImportReport {
  posts: number;
  /** Users the posts were attributed to, matched or created. */
  authors: number;
  tagLinks: number;
  queuedRuns: number;
  seconds: number;
  /** Posts and tag links written per second, reading and checking included. */
  rowsPerSecond: number;
}

export type ImportProgress = (phase: 'check' | 'write', done: number, total: number) => void;

/** Rows per statement: big enough to amortise a round trip, small enough to report progress. */
const CHUNK_SIZE = 1000;
const markdownFile = /\.(md|markdown)$/i;

/** The Markdown files under `folder`, sorted, skipping dot folders and node_modules. */
export async function listMarkdownFiles(folder: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(folder, { withFileTypes: true })) {
    const path = join(folder, entry.name);
    if (entry.isDirectory() && entry.name !== 'node_modules' && !entry.name.startsWith('.')) {
      found.push(...(await listMarkdownFiles(path)));
    } else if (entry.isFile() && markdownFile.test(entry.name)) found.push(path);
  }
  return found.sort();
}

export async function readMarkdownFiles(paths: readonly string[]): Promise<MarkdownFile[]> {
  return Promise.all(
    paths.map(async (path) => ({
      path,
      bytes: await readFile(path),
      modifiedAt: (await stat(path)).mtime,
    })),
  );
}

/**
 * Imports Markdown posts all or nothing: every file is read and checked (front matter, the
 * limits of createPost, text Postgres can store, slugs unique in the run and unused) before
 * anything is written; then all posts, authors, tags and (with `process`) pipeline runs are
 * written in one transaction. Throws ImportRefused listing every problem of every file.
 */
export async function importMarkdown(
  deps: { db: Db; cache: Cache },
  files: readonly MarkdownFile[],
  options: { defaultAuthor: string | null; process: boolean; onProgress?: ImportProgress },
): Promise<ImportReport> {
  const started = performance.now();
  const rows = await checkFiles(deps.db, files, options);
  const written = { posts: 0, authors: new Set<string>(), tagLinks: 0, queuedRuns: 0 };
  // A slug taken by a concurrent writer since the check: CONFLICT, not a driver error.
  await withPgErrors(
    () =>
      transact(deps.db, async (trx, afterCommit) => {
        // A large import runs longer than the per-request statement timeout is meant for.
        await sql`set local statement_timeout = 0`.execute(trx);
        Object.assign(written, { posts: 0, authors: new Set(), tagLinks: 0, queuedRuns: 0 });
        for (let start = 0; start < rows.length; start += CHUNK_SIZE) {
          const chunk = rows.slice(start, start + CHUNK_SIZE);
          const result = await writeImport(trx, chunk, {
            defaultAuthorId: null,
            queue: options.process ? { createdBy: null } : null,
            rows: false,
          });
          written.posts += result.posts.length;
          for (const id of result.authorIds) written.authors.add(id);
          written.tagLinks += chunk.reduce((sum, row) => sum + row.tags.length, 0);
          written.queuedRuns += result.queuedRuns;
          options.onProgress?.('write', written.posts, rows.length);
        }
        afterCommit(() =>
          deps.cache.invalidate([
            ALL_POSTS_TAG,
            ALL_USERS_TAG,
            ...(written.queuedRuns > 0 ? [PIPELINE_TAG] : []),
          ]),
        );
      }),
    { posts_slug_key: 'A post with one of these slugs was created meanwhile' },
  );
  const seconds = (performance.now() - started) / 1000;
  return {
    posts: written.posts,
    authors: written.authors.size,
    tagLinks: written.tagLinks,
    queuedRuns: written.queuedRuns,
    seconds,
    rowsPerSecond: Math.round((written.posts + written.tagLinks) / seconds),
  };
}

async function checkFiles(
  db: Db,
  files: readonly MarkdownFile[],
  options: { defaultAuthor: string | null; onProgress?: ImportProgress },
): Promise<ImportRow[]> {
  const problems = new Map<number, string[]>();
  const report = (index: number, message: string) =>
    problems.set(index, [...(problems.get(index) ?? []), message]);
  const checked: CheckedNewPost[] = files.map((file, index) => {
    const read = readMarkdownPost(file, options.defaultAuthor);
    for (const problem of read.problems) report(index, problem);
    options.onProgress?.('check', index + 1, files.length);
    if (read.problems.length > 0) return { title: '', body: '' };
    const parsed = newPostInput.safeParse(read.input);
    if (parsed.success) return parsed.data;
    for (const issue of parsed.error.issues)
      report(index, `${issue.path.join('.')}: ${issue.message}`);
    return { title: '', body: '' };
  });
  const paths = files.map((file) => file.path);
  const { rows, problems: batchProblems } = toImportRows(checked, paths);
  for (const problem of batchProblems) {
    if (!problems.has(problem.index)) report(problem.index, `${problem.field}: ${problem.message}`);
  }
  const taken = await takenSlugs(
    db,
    rows.map((row) => row.slug),
  );
  rows.forEach((row, index) => {
    if (taken.has(row.slug) && !problems.has(index)) {
      report(index, `slug: "${row.slug}" is already used by a post`);
    }
  });
  if (problems.size > 0) {
    throw new ImportRefused(
      [...problems.entries()]
        .sort(([a], [b]) => a - b)
        .map(([index, messages]) => ({ path: paths[index]!, problems: messages })),
    );
  }
  return rows;
}
