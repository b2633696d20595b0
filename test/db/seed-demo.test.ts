import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CorpusDocument,
  loadReadmeCorpus,
  nodeModules,
  toMarkdownFile,
} from '../../src/db/seed-corpus.ts';
import { runPipelineToEnd } from '../../src/db/seed-demo.ts';
import { importMarkdown } from '../../src/modules/post/import/markdown-import.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);
let app: TestApp;
let corpus: CorpusDocument[];

/** `npm run seed -- …` against this file's database. */
async function seedCli(...args: string[]) {
  return run(process.execPath, ['--import', 'tsx', 'src/db/seed-cli.ts', ...args], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: app.database.url, REDIS_URL: '', LOG_LEVEL: 'silent' },
  });
}

beforeAll(async () => {
  app = await startTestApp();
  corpus = await loadReadmeCorpus();
});

afterAll(() => app?.close());

describe('npm run seed (the demo data)', { timeout: 120_000 }, () => {
  it('imports the installed READMEs as posts: real text, intact, searchable, once', async () => {
    expect(corpus.length).toBeGreaterThan(50);
    const { stdout } = await seedCli('--skip-pipeline');
    expect(stdout).toContain(`corpus: ${corpus.length} READMEs`);
    expect(stdout).toContain(`imported ${corpus.length} posts`);

    const posts = await app.deps.db
      .selectFrom('posts')
      .innerJoin('users', 'users.id', 'posts.author_id')
      .select(['posts.slug', 'posts.title', 'posts.body', 'posts.status', 'users.name as author'])
      .execute();
    expect(posts).toHaveLength(corpus.length);
    const bySlug = new Map(posts.map((post) => [post.slug, post]));
    let headed = 0;
    for (const document of corpus) {
      const post = bySlug.get(document.slug)!;
      // The body is the README as read here from disk, less the blank lines it may start with.
      const readme = await readFile(join(nodeModules, '..', document.path), 'utf8');
      expect(post.body).toBe(readme.replace(/^(?:[ \t]*\r?\n)+/, ''));
      expect(post.status).toBe('PUBLISHED');
      const plainHeading = /^# ([\w .,:-]+)\n/.exec(post.body)?.[1];
      if (plainHeading) {
        expect(post.title).toBe(plainHeading.trim());
        headed += 1;
      }
    }
    expect(headed).toBeGreaterThan(10);
    // Not the old 53-word vocabulary: thousands of distinct words.
    const distinct = new Set(
      posts.flatMap((post) => post.body.toLowerCase().match(/[a-z]{3,}/g) ?? []),
    );
    expect(distinct.size).toBeGreaterThan(5000);
    expect(new Set(posts.map((post) => post.author)).size).toBeGreaterThan(20);

    // A word that only one README uses finds that README.
    const documentsByWord = new Map<string, Set<string>>();
    for (const document of corpus) {
      for (const word of new Set(document.body.toLowerCase().match(/\b[a-z]{9,14}\b/g) ?? [])) {
        documentsByWord.set(word, (documentsByWord.get(word) ?? new Set()).add(document.slug));
      }
    }
    const [word, slugs] = [...documentsByWord].find(([, found]) => found.size === 1)!;
    const search = await app.gql(
      'query($q: String!) { searchPosts(query: $q, first: 10) { edges { node { slug } } } }',
      { q: word },
    );
    expect(search.errors).toBeUndefined();
    expect(
      search.data!.searchPosts.edges.map((edge: { node: { slug: string } }) => edge.node.slug),
    ).toContain([...slugs][0]);

    // A second seed finds everything imported already and writes nothing.
    const again = await seedCli('--skip-pipeline');
    expect(again.stdout).toContain('imported 0 posts');
  });

  it('runs the pipeline over imported READMEs to the end', async () => {
    const fresh = await startTestApp();
    try {
      const documents = corpus.slice(0, 3);
      const report = await importMarkdown(fresh.deps, documents.map(toMarkdownFile), {
        defaultAuthor: null,
        process: true,
      });
      expect(report.queuedRuns).toBe(3);
      const seen: number[] = [];
      await runPipelineToEnd(fresh.deps, (done) => seen.push(done));
      expect(seen.at(-1)).toBe(3);
      const posts = await fresh.deps.db
        .selectFrom('posts')
        .innerJoin('pipeline_runs', 'pipeline_runs.post_id', 'posts.id')
        .select(['pipeline_runs.status', 'posts.summary', 'posts.keywords', 'posts.status as post'])
        .execute();
      expect(posts).toHaveLength(3);
      for (const post of posts) {
        expect(post).toMatchObject({ status: 'SUCCEEDED', post: 'PUBLISHED' });
        expect(post.summary?.length).toBeGreaterThan(20);
        expect(post.keywords.length).toBeGreaterThan(0);
      }
    } finally {
      await fresh.close();
    }
  });
});
