import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.ts';
import { createUser, type TestUser } from '../../helpers/factories.ts';
import { freePort } from '../../helpers/processes.ts';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const run = promisify(execFile);
let app: TestApp;
let editor: TestUser;
const folders: string[] = [];

/** `npm run import -- …`, as an operator types it, against this file's database. */
async function importCli(...args: string[]) {
  return run(
    process.execPath,
    ['--import', 'tsx', 'src/modules/post/import/import-cli.ts', ...args],
    {
      cwd: root,
      env: { ...process.env, DATABASE_URL: app.database.url, REDIS_URL: '', LOG_LEVEL: 'silent' },
    },
  );
}

const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => null,
    (error: { code: number; stderr: string }) => error,
  );

/** A temporary folder holding these files (path → text). */
async function folderOf(files: Record<string, string | Buffer>): Promise<string> {
  const folder = await mkdtemp(join(tmpdir(), 'quire-import-'));
  folders.push(folder);
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(folder, path)), { recursive: true });
    await writeFile(join(folder, path), typeof text === 'string' ? text : new Uint8Array(text));
  }
  return folder;
}

const count = async (table: 'posts' | 'users' | 'tags' | 'post_tags' | 'pipeline_runs') =>
  Number(
    (
      await app.deps.db
        .selectFrom(table)
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  );

const postBySlug = (slug: string) =>
  app.deps.db
    .selectFrom('posts')
    .innerJoin('users', 'users.id', 'posts.author_id')
    .select([
      'posts.id',
      'posts.title',
      'posts.body',
      'posts.status',
      'posts.created_at',
      'posts.published_at',
      'users.name as author_name',
      'users.email as author_email',
    ])
    .where('posts.slug', '=', slug)
    .executeTakeFirst();

const tagsOf = async (postId: string) =>
  (
    await app.deps.db
      .selectFrom('post_tags')
      .innerJoin('tags', 'tags.id', 'post_tags.tag_id')
      .select('tags.name')
      .where('post_tags.post_id', '=', postId)
      .orderBy('tags.name')
      .execute()
  ).map((row) => row.name);

const hugoBody = `Hugo keeps its **content** in bundles.

It reads the quokkalith paragraph as prose.
`;
const jekyllBody = '# A Jekyll Heading\n\nJekyll posts carry their date in the file name.\n';
const astroBody = 'Astro calls the date `pubDate`.\n\n```js\nconst x = 1;\n```\n';
const eleventyBody = 'Eleventy drafts stay drafts.\n';

beforeAll(async () => {
  app = await startTestApp();
  editor = await createUser(app.deps.db, 'EDITOR', 'Existing Editor');
  // An author already on Quire, matched by email whatever its case.
  await app.deps.db
    .insertInto('users')
    .values({ email: 'grace@example.test', name: 'Grace Hopper', role: 'AUTHOR' })
    .execute();
});

afterAll(async () => {
  await app?.close();
  for (const folder of folders) await rm(folder, { recursive: true, force: true });
});

describe('npm run import', { timeout: 60_000 }, () => {
  it('imports Hugo, Jekyll, Astro and Eleventy files with authors, tags, dates and drafts', async () => {
    const folder = await folderOf({
      'content/posts/hugo-bundle/index.md': `---
title: "Hugo: a bundle"
date: 2023-04-05T10:30:00+02:00
tags: ["Static Sites", "GO"]
categories: [Web Dev]
draft: false
authors: ["Grace Hopper <GRACE@example.test>"]
---

${hugoBody}`,
      '_posts/2022-12-24-jekyll-post.markdown': `---
layout: post
tags: ruby jekyll
author: Ada Lovelace
---
${jekyllBody}`,
      'src/content/blog/astro.md': `---
title: Astro post
pubDate: 2024-02-29
slug: custom-astro-slug
author:
  name: Linus Example
  email: linus@example.test
tags: [astro]
---
${astroBody}`,
      'posts/eleventy.md': `---
title: Eleventy draft
date: 2021-07-01 08:00:00 +0000
draft: true
tags: post
---
${eleventyBody}`,
    });
    const before = await count('users');
    const { stderr } = await importCli(folder, '--author', 'Fallback <fallback@example.test>');
    expect(stderr).toContain('imported 4 posts by 4 authors');

    const hugo = await postBySlug('hugo-bundle');
    expect(hugo).toMatchObject({
      title: 'Hugo: a bundle',
      body: hugoBody,
      status: 'PUBLISHED',
      author_name: 'Grace Hopper',
      author_email: 'grace@example.test',
    });
    expect(new Date(hugo!.created_at).toISOString()).toBe('2023-04-05T08:30:00.000Z');
    expect(hugo!.published_at).toBe(hugo!.created_at);
    expect(await tagsOf(hugo!.id)).toEqual(['go', 'static-sites', 'web-dev']);

    const jekyll = await postBySlug('jekyll-post');
    expect(jekyll).toMatchObject({
      title: 'A Jekyll Heading',
      body: jekyllBody,
      author_name: 'Ada Lovelace',
      author_email: 'ada-lovelace@authors.invalid',
    });
    expect(new Date(jekyll!.created_at).toISOString()).toBe('2022-12-24T00:00:00.000Z');
    expect(await tagsOf(jekyll!.id)).toEqual(['jekyll', 'ruby']);

    const astro = await postBySlug('custom-astro-slug');
    expect(astro).toMatchObject({ body: astroBody, author_email: 'linus@example.test' });
    expect(new Date(astro!.created_at).toISOString()).toBe('2024-02-29T00:00:00.000Z');

    const eleventy = await postBySlug('eleventy');
    expect(eleventy).toMatchObject({
      status: 'DRAFT',
      published_at: null,
      body: eleventyBody,
      author_email: 'fallback@example.test',
    });
    // Grace matched; Ada, Linus and the fallback author created.
    expect(await count('users')).toBe(before + 3);

    // Real text arrives searchable.
    const search = await app.gql(
      '{ searchPosts(query: "quokkalith") { totalCount edges { node { title } } } }',
    );
    expect(search.errors).toBeUndefined();
    expect(search.data!.searchPosts.edges).toEqual([{ node: { title: 'Hugo: a bundle' } }]);

    // A second run matches the name-only author instead of creating another one.
    const again = await folderOf({
      'more.md': '---\ntitle: More\nauthor: Ada Lovelace\n---\nMore.\n',
    });
    await importCli(again);
    expect((await postBySlug('more'))!.author_email).toBe('ada-lovelace@authors.invalid');
    expect(await count('users')).toBe(before + 3);
  });

  it('refuses the whole run when a file is bad, naming every bad file and writing nothing', async () => {
    const folder = await folderOf({
      'good.md': '---\ntitle: Good\nauthor: a@example.test\n---\nFine.\n',
      'bad-yaml.md': '---\ntitle: [unclosed\n---\nBody\n',
      'nul.md': Buffer.from('---\ntitle: Nul\nauthor: a@example.test\n---\nA \0 byte\n'),
      'escaped-nul.md': '---\ntitle: "Nul \\0 escaped"\nauthor: a@example.test\n---\nx\n',
      'latin1.md': Buffer.from([0x2d, 0x2d, 0x2d, 0x0a, 0x2d, 0x2d, 0x2d, 0x0a, 0xe9, 0x0a]),
      'bad-date.md': '---\ntitle: Date\ndate: 2023-02-30\nauthor: a@example.test\n---\nx\n',
      'no-author.md': '---\ntitle: Nobody\n---\nx\n',
      'js.md': '---js\n{ title: (() => { throw new Error("ran") })() }\n---\nx\n',
      'dup-a.md': '---\ntitle: Same\nslug: same\nauthor: a@example.test\n---\nx\n',
      'dup-b.md': '---\ntitle: Same again\nslug: same\nauthor: a@example.test\n---\nx\n',
      'taken.md': '---\ntitle: Taken\nslug: taken-slug\nauthor: a@example.test\n---\nx\n',
    });
    await app.deps.db
      .insertInto('posts')
      .values({ author_id: editor.id, title: 'Taken', slug: 'taken-slug', body: 'x' })
      .execute();
    const before = { posts: await count('posts'), users: await count('users') };
    const failed = await failure(importCli(folder));
    expect(failed?.code).toBe(1);
    const lines = failed!.stderr.split('\n');
    const about = (file: string) => lines.filter((line) => line.startsWith(join(folder, file)));
    // A file whose front matter cannot be read reports that alone, not what it then lacks.
    expect(about('bad-yaml.md')).toEqual([
      expect.stringContaining('front matter: unexpected end of the stream'),
    ]);
    expect(about('nul.md')[0]).toContain('NUL');
    expect(about('escaped-nul.md')[0]).toContain('title: contains a NUL character');
    expect(about('latin1.md')[0]).toContain('not valid UTF-8');
    expect(about('bad-date.md')[0]).toContain('date: "2023-02-30" is not a date');
    expect(about('no-author.md')[0]).toContain('author: missing');
    expect(about('js.md')[0]).toContain('only YAML or JSON front matter');
    expect(about('dup-b.md')[0]).toContain(`duplicates the slug of ${join(folder, 'dup-a.md')}`);
    expect(about('taken.md')[0]).toContain('"taken-slug" is already used');
    expect(about('good.md')).toEqual([]);
    expect(failed!.stderr).toContain('9 file(s) cannot be imported; nothing was written');
    expect({ posts: await count('posts'), users: await count('users') }).toEqual(before);
  });

  it('queues a pipeline run per imported post with --process', async () => {
    const folder = await folderOf({
      'one.md': '---\ntitle: Process one\nauthor: p@example.test\n---\nFirst body.\n',
      'two.md': '---\ntitle: Process two\nauthor: p@example.test\ndraft: true\n---\nSecond.\n',
    });
    const runsBefore = await count('pipeline_runs');
    const { stderr } = await importCli(folder, '--process');
    expect(stderr).toContain('2 pipeline runs queued');
    const runs = await app.deps.db
      .selectFrom('pipeline_runs')
      .innerJoin('posts', 'posts.id', 'pipeline_runs.post_id')
      .select([
        'posts.slug',
        'posts.status as post_status',
        'pipeline_runs.id',
        'pipeline_runs.status',
      ])
      .where('posts.slug', 'in', ['one', 'two'])
      .orderBy('posts.slug')
      .execute();
    expect(runs.map(({ slug, post_status, status }) => ({ slug, post_status, status }))).toEqual([
      { slug: 'one', post_status: 'PUBLISHED', status: 'QUEUED' },
      { slug: 'two', post_status: 'QUEUED', status: 'QUEUED' },
    ]);
    expect(await count('pipeline_runs')).toBe(runsBefore + 2);
    const events = await app.deps.db
      .selectFrom('pipeline_events')
      .select(['seq', 'type'])
      .where('run_id', '=', runs[0]!.id)
      .execute();
    expect(events).toEqual([{ seq: 1, type: 'run.queued' }]);
  });

  it('exits 1 on the embedded default too when it refuses a file', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'quire-import-embedded-'));
    folders.push(dataDir);
    // As root, Postgres runs as the `postgres` user, which must enter the data folder.
    await chmod(dataDir, 0o755);
    const port = await freePort();
    const folder = await folderOf({ 'untitled.md': '---\ntitle: ""\n---\nBody.\n' });
    const failed = await failure(
      run(process.execPath, ['--import', 'tsx', 'src/modules/post/import/import-cli.ts', folder], {
        cwd: root,
        env: {
          ...process.env,
          DATABASE_URL: '',
          REDIS_URL: '',
          DATA_DIR: dataDir,
          EMBEDDED_PG_PORT: String(port),
          LOG_LEVEL: 'silent',
        },
      }),
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toContain('nothing was written');
  }, 60_000);

  it('prints its usage and exits 2 without a folder', async () => {
    const failed = await failure(importCli());
    expect(failed?.code).toBe(2);
    expect(failed?.stderr).toContain('usage: npm run import');
  });
});

describe('importPosts in bulk', { timeout: 60_000 }, () => {
  const mutation = `mutation($input: [CreatePostInput!]!, $process: Boolean) {
    importPosts(input: { posts: $input, process: $process }) {
      importedCount queuedRunCount posts { slug status createdAt author { name } }
    }
  }`;

  it('sets authors and creation times, queues runs, and measures 5,000 posts', async () => {
    const bulk = await startTestApp({ MAX_BODY_BYTES: String(8 * 1024 * 1024) }, app);
    try {
      const input = Array.from({ length: 5000 }, (_, index) => ({
        title: `Bulk real ${index}`,
        body: `A paragraph of imported text number ${index}, with ${index % 7} clauses.`,
        slug: `bulk-real-${index}`,
        status: 'PUBLISHED',
        tags: [`bulk-${index % 25}`],
        author: index % 2 ? 'Bulk Writer <bulk@example.test>' : 'Grace Hopper',
        createdAt: new Date(Date.UTC(2024, 0, 1) + index * 60_000).toISOString(),
      }));
      const started = performance.now();
      const result = await bulk.gql(mutation, { input, process: true }, { token: editor.token });
      const seconds = (performance.now() - started) / 1000;
      expect(result.errors).toBeUndefined();
      const imported = result.data!.importPosts;
      expect(imported.importedCount).toBe(5000);
      expect(imported.queuedRunCount).toBe(5000);
      expect(imported.posts[1]).toEqual({
        slug: 'bulk-real-1',
        status: 'PUBLISHED',
        createdAt: '2024-01-01T00:01:00Z',
        author: { name: 'Bulk Writer' },
      });
      expect(imported.posts[0].author).toEqual({ name: 'Grace Hopper' });
      const rows = 5000 * 2; // posts and tag links
      console.info(
        `importPosts: 5,000 posts in ${seconds.toFixed(2)} s, ${Math.round(rows / seconds)} rows/s`,
      );
    } finally {
      await bulk.close();
    }
  });

  it('refuses a request over MAX_BODY_BYTES before reading it, writing nothing', async () => {
    const small = await startTestApp({ MAX_BODY_BYTES: '4096' }, app);
    try {
      const input = Array.from({ length: 20 }, (_, index) => ({
        title: `Too large ${index}`,
        body: 'word '.repeat(60),
        slug: `too-large-${index}`,
      }));
      const result = await small.gql(mutation, { input }, { token: editor.token });
      expect(result.errors?.[0]?.extensions?.code).toBe('PAYLOAD_TOO_LARGE');
      const written = await app.deps.db
        .selectFrom('posts')
        .select('id')
        .where('slug', 'like', 'too-large-%')
        .execute();
      expect(written).toEqual([]);
    } finally {
      await small.close();
    }
  });

  it('stores queued drafts, their bodies and their links with the creation time given', async () => {
    const input = [
      {
        title: 'Backdated draft',
        body: '# Backdated\n\nA draft written long ago.',
        slug: 'backdated-draft',
        tags: ['old-news', 'archive'],
        createdAt: '2020-05-04T03:02:01Z',
      },
      { title: 'Fresh post', body: 'Published now.', slug: 'fresh-post', status: 'PUBLISHED' },
    ];
    const before = new Date();
    const result = await app.gql(
      `mutation($input: [CreatePostInput!]!) {
        importPosts(input: { posts: $input, process: true }) {
          queuedRunCount posts { slug status body createdAt }
        }
      }`,
      { input },
      { token: editor.token },
    );
    expect(result.errors).toBeUndefined();
    expect(result.data!.importPosts).toEqual({
      queuedRunCount: 2,
      posts: [
        {
          slug: 'backdated-draft',
          status: 'QUEUED',
          body: input[0]!.body,
          createdAt: '2020-05-04T03:02:01Z',
        },
        {
          slug: 'fresh-post',
          status: 'PUBLISHED',
          body: 'Published now.',
          createdAt: expect.any(String),
        },
      ],
    });
    const stored = await app.deps.db
      .selectFrom('posts')
      .select(['slug', 'status', 'body', 'created_at', 'updated_at'])
      .where('slug', 'in', ['backdated-draft', 'fresh-post'])
      .orderBy('slug')
      .execute();
    expect(stored.map((post) => [post.slug, post.status, post.body])).toEqual([
      ['backdated-draft', 'QUEUED', input[0]!.body],
      ['fresh-post', 'PUBLISHED', 'Published now.'],
    ]);
    // Queued counts as a change: updated now, as startPipeline would leave it.
    expect(new Date(stored[0]!.updated_at).getTime()).toBeGreaterThanOrEqual(
      before.getTime() - 1000,
    );
    const links = await app.deps.db
      .selectFrom('post_tags')
      .innerJoin('posts', 'posts.id', 'post_tags.post_id')
      .select(['posts.created_at', 'post_tags.post_created_at'])
      .where('posts.slug', '=', 'backdated-draft')
      .execute();
    expect(links).toHaveLength(2);
    for (const link of links) expect(link.post_created_at).toEqual(link.created_at);
  });

  it('still copies the post creation time into links inserted or moved without it', async () => {
    const [older, newer] = await Promise.all(
      ['2019-01-01T00:00:00Z', '2021-01-01T00:00:00Z'].map((createdAt, index) =>
        app.deps.db
          .insertInto('posts')
          .values({
            author_id: editor.id,
            title: `Trigger ${index}`,
            body: 'x',
            slug: `link-trigger-${index}`,
            created_at: createdAt,
          })
          .returning(['id', 'created_at'])
          .executeTakeFirstOrThrow(),
      ),
    );
    const tag = await app.deps.db
      .insertInto('tags')
      .values({ name: 'link-trigger' })
      .returning('id')
      .executeTakeFirstOrThrow();
    const linkTime = () =>
      app.deps.db
        .selectFrom('post_tags')
        .select('post_created_at')
        .where('tag_id', '=', tag.id)
        .executeTakeFirstOrThrow();
    await app.deps.db
      .insertInto('post_tags')
      .values({ post_id: older!.id, tag_id: tag.id })
      .execute();
    expect((await linkTime()).post_created_at).toEqual(older!.created_at);
    await app.deps.db
      .updateTable('post_tags')
      .set({ post_id: newer!.id })
      .where('tag_id', '=', tag.id)
      .execute();
    expect((await linkTime()).post_created_at).toEqual(newer!.created_at);
  });

  it('lets only editors set the author or the creation time', async () => {
    const author = await createUser(app.deps.db, 'AUTHOR');
    for (const extra of [{ author: 'Someone Else' }, { createdAt: '2020-01-01T00:00:00Z' }]) {
      const result = await app.gql(
        mutation,
        { input: [{ title: 'Mine', body: 'x', slug: 'forbidden-extra', ...extra }] },
        { token: author.token },
      );
      expect(result.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    }
    const badAuthor = await app.gql(
      mutation,
      { input: [{ title: 'Bad', body: 'x', author: 'Ada <not-an-email>' }] },
      { token: editor.token },
    );
    expect(badAuthor.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(badAuthor.errors?.[0]?.message).toContain('input.posts.0.author');

    // Every bad post of a batch is listed, not only the first.
    const twice = await app.gql(
      mutation,
      {
        input: [
          { title: 'One', body: 'x', slug: 'listed-twice' },
          { title: 'Two', body: 'x', slug: 'listed-twice' },
          { title: '!!!', body: 'x' },
        ],
      },
      { token: editor.token },
    );
    expect(twice.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(twice.errors?.[0]?.extensions?.fields).toEqual([
      { path: 'input.posts.1.slug', message: 'duplicates the slug of input.posts.0' },
      { path: 'input.posts.2.slug', message: 'title has no letters or digits to derive a slug' },
    ]);
  });
});

describe('importPosts returns rows only when asked', { timeout: 60_000 }, () => {
  let admin: TestUser;
  /** The same database, with room for 2,500 posts in one request. */
  let bulk: TestApp;
  beforeAll(async () => {
    // An admin sees the statements' text in the debug extension.
    admin = await createUser(app.deps.db, 'ADMIN', 'Import Admin');
    bulk = await startTestApp({ MAX_BODY_BYTES: String(4 * 1024 * 1024) }, app);
  });
  afterAll(() => bulk?.close());
  const batch = (prefix: string, size: number) =>
    Array.from({ length: size }, (_, index) => ({
      title: `${prefix} ${index}`,
      body: `Body "${index}" \\ ${index}`,
      slug: `${prefix}-${index}`,
      tags: [`${prefix}-tag-${index % 3}`, `${prefix}-own-${index}`],
    }));
  /** The text of the posts insert the request ran. */
  const postInsert = (result: { extensions?: Record<string, unknown> }) =>
    (result.extensions!.sql as { statements: { sql: string }[] }).statements
      .map((statement) => statement.sql)
      .find((text) => /^\s*insert into "posts"/.test(text));

  it('returns only the keys the links need when the selection leaves `posts` out', async () => {
    const mutation = `mutation($input: [CreatePostInput!]!, $withPosts: Boolean!) {
      importPosts(input: { posts: $input }) {
        importedCount ...Written @include(if: $withPosts)
      }
    }
    fragment Written on ImportPostsPayload { written: posts { slug body } }`;
    const without = await app.gql(
      mutation,
      { input: batch('keys-only', 3), withPosts: false },
      { token: admin.token, debug: true },
    );
    expect(without.errors).toBeUndefined();
    expect(without.data!.importPosts).toEqual({ importedCount: 3 });
    expect(postInsert(without)).toMatch(/returning "id", "slug", "created_at"\s*$/);
    const stored = await postBySlug('keys-only-2');
    expect(stored).toMatchObject({ title: 'keys-only 2', body: 'Body "2" \\ 2' });
    expect(await tagsOf(stored!.id)).toEqual(['keys-only-own-2', 'keys-only-tag-2']);

    // Asked for through a fragment, under an alias: whole rows, in input order.
    const input = batch('keys-asked', 2);
    const withPosts = await app.gql(
      mutation,
      { input, withPosts: true },
      { token: admin.token, debug: true },
    );
    expect(postInsert(withPosts)).toMatch(/returning .*"title"/);
    expect(withPosts.data!.importPosts.written).toEqual(
      input.map((post) => ({ slug: post.slug, body: post.body })),
    );
  });

  it('writes nothing when a post in the middle of 2,500 conflicts, rows asked or not', async () => {
    await app.deps.db
      .insertInto('posts')
      .values({ author_id: admin.id, title: 'Taken', body: 'x', slug: 'mid-conflict-taken' })
      .execute();
    const before = {
      posts: await count('posts'),
      tags: await count('tags'),
      links: await count('post_tags'),
    };
    for (const selection of ['importedCount', 'posts { id }']) {
      const input = batch('mid-conflict', 2500);
      // Passes validation, fails inside the posts insert.
      input[1300] = { ...input[1300]!, slug: 'mid-conflict-taken' };
      const result = await bulk.gql(
        `mutation($input: [CreatePostInput!]!) { importPosts(input: { posts: $input }) { ${selection} } }`,
        { input },
        { token: admin.token },
      );
      expect(result.errors?.[0]?.extensions?.code).toBe('CONFLICT');
      expect({
        posts: await count('posts'),
        tags: await count('tags'),
        links: await count('post_tags'),
      }).toEqual(before);
    }
  });
});
