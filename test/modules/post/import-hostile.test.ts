import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.ts';
import { createUser, type TestUser } from '../../helpers/factories.ts';

// importPosts sends titles, bodies and authors to Postgres as array literals
// (src/db/postgres-values.ts `arrayLiteral`): strings that mean something in that syntax (quotes,
// backslashes, NULL, braces, commas, newlines) must be stored exactly; strings Postgres cannot
// store as text (NUL, lone surrogates) must be refused with BAD_USER_INPUT, never INTERNAL, and
// with nothing written: no post, link, tag or author of the call's other posts.

let app: TestApp;
let editor: TestUser;
const IMPORT = `mutation ($input: ImportPostsInput!) {
  importPosts(input: $input) { importedCount posts { id title body slug } }
}`;

beforeAll(async () => {
  app = await startTestApp({ RATE_LIMIT_MUTATIONS: '1000' });
  editor = await createUser(app.deps.db, 'EDITOR', 'Ed');
});

afterAll(async () => {
  await app?.close();
});

const HOSTILE = [
  '"',
  '\\',
  '\\"',
  'NULL',
  '"NULL"',
  'null',
  '{}',
  '{"a","b"}',
  '{NULL}',
  'a,b',
  'line\nbreak\r\n',
  "it's",
  '\t leading and trailing \t',
  '\\\\server\\share',
  'é😀 \u2028\u2029',
];

async function counts() {
  const { rows } = await sql<Record<string, string>>`
    select (select count(*) from posts) as posts, (select count(*) from post_tags) as links,
      (select count(*) from tags) as tags, (select count(*) from users) as users`.execute(
    app.deps.db,
  );
  return rows[0];
}

describe('importPosts with hostile strings', () => {
  it('stores titles, bodies and author names exactly as sent', async () => {
    const posts = HOSTILE.map((text, index) => ({
      title: `Hostile ${index} ${text}`,
      body: text,
      tags: ['hostile', `case-${index}`],
      author: `${text.trim() || 'x'} ${index} <hostile-${index}@example.com>`,
    }));
    const result = await app.gql(IMPORT, { input: { posts } }, { token: editor.token });
    expect(result.errors).toBeUndefined();
    expect(result.data!.importPosts.importedCount).toBe(HOSTILE.length);
    const { rows } = await sql<{
      title: string;
      body: string;
      name: string;
      email: string;
      tags: string[];
    }>`
      select p.title, p.body, u.name, u.email,
        array(select t.name from post_tags pt join tags t on t.id = pt.tag_id
              where pt.post_id = p.id order by t.name) as tags
      from posts p join users u on u.id = p.author_id
      where p.title like 'Hostile %' order by p.id`.execute(app.deps.db);
    // Titles are trimmed, as createPost trims them; bodies are kept as sent.
    expect(rows.map((row) => row.title)).toEqual(posts.map((post) => post.title.trim()));
    expect(rows.map((row) => row.body)).toEqual(HOSTILE);
    expect(rows.map((row) => row.name)).toEqual(
      // A display name loses its enclosing quotes and runs of white space (import/author.ts).
      HOSTILE.map((text, index) =>
        `${text.trim() || 'x'} ${index}`.replace(/^"|"$/g, '').replace(/\s+/g, ' ').trim(),
      ),
    );
    // `Name <email>` is read as such even when the name spans lines.
    expect(rows.map((row) => row.email)).toEqual(
      HOSTILE.map((_, index) => `hostile-${index}@example.com`),
    );
    expect(rows.map((row) => row.tags)).toEqual(
      HOSTILE.map((_, index) => [`case-${index}`, 'hostile']),
    );
    expect(result.data!.importPosts.posts.map((post: { body: string }) => post.body)).toEqual(
      HOSTILE,
    );
  });

  it('stores a 200,000-character body exactly', async () => {
    const body = `${'"\\,{}NULL\n'.repeat(20_000)}`;
    expect(body.length).toBe(200_000);
    const result = await app.gql(
      IMPORT,
      { input: { posts: [{ title: 'Long hostile', body }] } },
      { token: editor.token },
    );
    expect(result.errors).toBeUndefined();
    const { rows } = await sql<{ length: number; md5: string }>`
      select length(body) as length, md5(body) as md5 from posts where title = 'Long hostile'`.execute(
      app.deps.db,
    );
    expect(rows).toEqual([{ length: 200_000, md5: createHash('md5').update(body).digest('hex') }]);
  });

  it('refuses NUL and lone surrogates anywhere with BAD_USER_INPUT, writing nothing', async () => {
    for (const bad of ['a\u0000b', 'a\uD800b', 'tail\uDC00', '\uD83D']) {
      for (const field of ['title', 'body', 'tags', 'slug', 'author'] as const) {
        const before = await counts();
        const badPost: Record<string, unknown> = { title: 'Bad one', body: 'fine' };
        if (field === 'tags') badPost.tags = ['fine', bad];
        else if (field === 'author') badPost.author = `${bad} <bad@example.com>`;
        else badPost[field] = bad;
        const result = await app.gql(
          IMPORT,
          {
            input: {
              posts: [
                {
                  title: 'Good first',
                  body: 'x',
                  tags: ['new-tag-a'],
                  author: 'New A <na@example.com>',
                },
                badPost,
                {
                  title: 'Good last',
                  body: 'y',
                  tags: ['new-tag-b'],
                  author: 'New B <nb@example.com>',
                },
              ],
            },
          },
          { token: editor.token },
        );
        const label = `${JSON.stringify(bad)} in ${field}`;
        expect(result.data ?? null, label).toBeNull();
        expect(
          result.errors?.map((error) => error.extensions?.code),
          label,
        ).toEqual(['BAD_USER_INPUT']);
        expect(JSON.stringify(result.errors), label).not.toMatch(
          /INTERNAL|insert|select|\bat\b.*\.ts/,
        );
        expect(await counts(), label).toEqual(before);
      }
    }
  });
});

describe('importPosts calls at once', () => {
  it('naming the same new author all succeed, sharing one user', async () => {
    for (let round = 0; round < 4; round += 1) {
      const email = `racer-${round}@example.com`;
      const results = await Promise.all(
        [0, 1, 2].map((index) =>
          app.gql(
            IMPORT,
            {
              input: {
                posts: [
                  {
                    title: `Race ${round} ${index}`,
                    body: 'x',
                    author: `Racer ${round} <${email}>`,
                    tags: [`race-${round}`],
                  },
                ],
              },
            },
            { token: editor.token },
          ),
        ),
      );
      expect(results.map((result) => result.errors?.[0]?.extensions?.code ?? 'ok')).toEqual([
        'ok',
        'ok',
        'ok',
      ]);
      const { rows } = await sql<{ users: string; posts: string }>`
        select (select count(*) from users where lower(email) = ${email}) as users,
          (select count(*) from posts p join users u on u.id = p.author_id
           where lower(u.email) = ${email}) as posts`.execute(app.deps.db);
      expect(rows[0]).toEqual({ users: '1', posts: '3' });
    }
  });
});
