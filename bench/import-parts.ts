import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { Db } from '../src/db/database.ts';
import { loadSeedText } from '../src/db/seed.ts';
import { loadReadmeCorpus } from '../src/db/seed-corpus.ts';
import { writeImport } from '../src/modules/post/import/import.service.ts';
import { newPostInput, toImportRows } from '../src/modules/post/post.service.ts';
import { databaseUrl } from '../test/helpers/services.ts';

/**
 * `node --import tsx bench/import-parts.ts --database <name> [--rounds 3]`: what each part of
 * importPosts' Postgres work costs. Writes the bench's 5,000 posts (bench/import.ts) with the
 * real `writeImport` inside a transaction that is rolled back, once as is and once per variant
 * with one thing removed first in the same transaction (a column, indexes, foreign keys: DDL is
 * transactional), and prints the backend's CPU (`/proc/<pid>/stat`) per variant, rounds
 * alternated. The difference from `base` is that part's cost. The database must be migrated and
 * is left as it was (`createdb imp && DATABASE_URL=…/imp npm run migrate`); run it under
 * `flock /tmp/quire-heavy.lock`.
 */
const { values: flags } = parseArgs({
  options: {
    database: { type: 'string' },
    rounds: { type: 'string', default: '3' },
  },
});
if (!flags.database) throw new Error('usage: import-parts.ts --database <name> [--rounds 3]');

const variants: Record<string, string[]> = {
  base: [],
  'no search column (tsvector and both GIN)': ['alter table posts drop column search'],
  'no GIN indexes': ['drop index posts_search_idx', 'drop index posts_published_search_idx'],
  'GIN split published / unpublished': [
    'drop index posts_search_idx',
    `create index posts_unpublished_search_idx on posts using gin (search)
       where status <> 'PUBLISHED'`,
  ],
  'no secondary btrees of posts': [
    'drop index posts_author_created_idx',
    'drop index posts_created_idx',
    'drop index posts_published_idx',
    'drop index posts_status_created_idx',
    'drop index posts_title_idx',
    'drop index posts_updated_idx',
  ],
  'no post_tags foreign keys': [
    'alter table post_tags drop constraint post_tags_post_id_fkey',
    'alter table post_tags drop constraint post_tags_tag_id_fkey',
  ],
  'no post_tags secondary indexes': [
    'drop index post_tags_tag_post_idx',
    'drop index post_tags_tag_created_idx',
  ],
};

const { paragraphs, headings } = await loadSeedText();
const documents = await loadReadmeCorpus();
/** The posts of bench/import.ts's first round. */
const inputs = Array.from({ length: 5000 }, (_, n) => ({
  title: headings[(n * 13) % headings.length]!,
  body: Array.from(
    { length: 1 + (n % 4) },
    (_, w) => paragraphs[(n * 31 + (w + 1) * 7919) % paragraphs.length],
  ).join('\n\n'),
  slug: `import-parts-${n}`,
  status: n % 10 < 7 ? ('PUBLISHED' as const) : ('DRAFT' as const),
  tags: documents[n % documents.length]!.tags,
}));
const checked = inputs.map((input) => newPostInput.parse(input));
const { rows } = toImportRows(
  checked,
  checked.map((_, index) => `${index}`),
);

const pool = new pg.Pool({ connectionString: databaseUrl(flags.database), max: 1 });
const db = new Kysely({ dialect: new PostgresDialect({ pool }) }) as unknown as Db;
await sql`insert into users (email, name) values ('import-parts@example.com', 'Import parts')
  on conflict do nothing`.execute(db);
const { rows: users } = await sql<{ id: string }>`
  select id from users where email = 'import-parts@example.com'`.execute(db);
const authorId = users[0]!.id;

class Rollback extends Error {}
const cpuMs = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
};

async function measure(statements: readonly string[]): Promise<number> {
  let spent = 0;
  await db
    .transaction()
    .execute(async (trx) => {
      const { rows: backend } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(
        trx,
      );
      for (const statement of statements) await sql.raw(statement).execute(trx);
      const before = cpuMs(backend[0]!.pid);
      await writeImport(trx, rows, { defaultAuthorId: authorId, queue: null, rows: false });
      spent = cpuMs(backend[0]!.pid) - before;
      throw new Rollback();
    })
    .catch((error) => {
      if (!(error instanceof Rollback)) throw error;
    });
  // The rolled-back rows and GIN pending entries would weigh on the next variant.
  await sql`vacuum posts, post_tags, tags`.execute(db);
  return spent;
}

const spent = new Map<string, number[]>(Object.keys(variants).map((name) => [name, []]));
// A first write warms the caches and the vacuum before it clears what an earlier run left.
await sql`vacuum posts, post_tags, tags`.execute(db);
await measure([]);
for (let round = 0; round < Number(flags.rounds); round += 1) {
  for (const [name, statements] of Object.entries(variants)) {
    spent.get(name)!.push(await measure(statements));
  }
}
const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!;
const base = median(spent.get('base')!);
console.log('| variant | backend CPU ms (median) | less than base | rounds |');
console.log('|---|---|---|---|');
for (const [name, values] of spent) {
  const value = median(values);
  console.log(`| ${name} | ${value} | ${base - value} | ${values.join(', ')} |`);
}
await db.destroy();
