import { sql } from 'kysely';
import type { Db } from './database.ts';
import { corpusHeadings, corpusParagraphs, loadReadmeCorpus, nodeModules } from './seed-corpus.ts';

export interface SeedSize {
  users: number;
  posts: number;
  commentsPerPost: number;
  tags: number;
}

export interface SeedReport {
  rows: number;
  seconds: number;
  rowsPerSecond: number;
}

/** Real text that generated posts are made of (see seed-corpus.ts). */
export interface SeedText {
  paragraphs: string[];
  headings: string[];
}

/** Paragraphs and headings of the installed packages' READMEs. */
export async function loadSeedText(): Promise<SeedText> {
  const documents = await loadReadmeCorpus();
  const text = { paragraphs: corpusParagraphs(documents), headings: corpusHeadings(documents) };
  if (text.paragraphs.length === 0 || text.headings.length === 0) {
    throw new Error(`No README text found under ${nodeModules}: run npm ci first`);
  }
  return text;
}

/**
 * Benchmark-scale data generated inside Postgres (generate_series), one statement per table, so
 * the cost is Postgres' insert speed, not the network. Post titles are headings and bodies are
 * 1–4 paragraphs of real README prose (`text`, loaded from node_modules when omitted), so search
 * runs over a real vocabulary. Deterministic for a given size and text. Ends with ANALYZE (timed)
 * and VACUUM (not timed).
 */
export async function seed(db: Db, size: SeedSize, text?: SeedText): Promise<SeedReport> {
  const { paragraphs, headings } = text ?? (await loadSeedText());
  const started = performance.now();
  await db.transaction().execute(async (trx) => {
    // A bulk load runs for seconds: the per-request statement timeout is not meant for it.
    await sql`set local statement_timeout = 0`.execute(trx);
    // Every generated reference points at a row generated before it, so per-row foreign-key
    // triggers (most of the load's time) prove nothing; skip them where the role may (superuser).
    const { rows: roles } = await sql<{ superuser: boolean }>`
      select rolsuper as superuser from pg_roles where rolname = current_user`.execute(trx);
    if (roles[0]?.superuser) await sql`set local session_replication_role = replica`.execute(trx);
    await sql`select setseed(0.42)`.execute(trx);
    const userBase = await nextId(trx, 'users');
    await sql`
      insert into users (email, name, role, created_at)
      select 'user' || (${userBase} + n) || '@example.com', 'User ' || (${userBase} + n),
             (array['ADMIN','EDITOR','AUTHOR','AUTHOR','AUTHOR','VIEWER'])[1 + n % 6],
             now() - (n || ' minutes')::interval
      from generate_series(1, ${size.users}) as n`.execute(trx);
    const postBase = await nextId(trx, 'posts');
    // Paragraphs and titles by number: each post picks its own by index lookups (a large array
    // parameter would be detoasted again for every subscript).
    await sql`
      create temp table seed_paragraphs (id int primary key, body text not null, words int not null)
      on commit drop`.execute(trx);
    await sql`
      insert into seed_paragraphs (id, body, words)
      select ordinality, body, words
      from unnest(${paragraphs}::text[], ${paragraphs.map(wordCount)}::int[])
        with ordinality as paragraph(body, words)`.execute(trx);
    await sql`
      create temp table seed_titles on commit drop as
      select ordinality::int as id, title from unnest(${headings}::text[]) with ordinality as title`.execute(
      trx,
    );
    await sql`alter table seed_titles add primary key (id)`.execute(trx);
    await sql`analyze seed_paragraphs, seed_titles`.execute(trx);
    await sql`
      insert into posts (author_id, title, slug, body, status, word_count, reading_minutes,
                         created_at, updated_at, published_at)
      select
        (select min(id) from users) + (n * 7919) % ${size.users},
        (select title from seed_titles where id = 1 + (n * 13) % ${headings.length}),
        'seed-' || (${postBase} + n),
        picked.body,
        case when n % 10 < 7 then 'PUBLISHED' when n % 10 < 9 then 'DRAFT' else 'REVIEW' end,
        picked.words, greatest(1, ceil(picked.words / 200.0)),
        now() - (n || ' seconds')::interval,
        now() - (n || ' seconds')::interval,
        case when n % 10 < 7 then now() - (n || ' seconds')::interval end
      from generate_series(1, ${size.posts}) as n
      cross join lateral (
        select string_agg(p.body, E'\\n\\n' order by w) as body, sum(p.words)::int as words
        from generate_series(1, 1 + n % 4) as w
        join seed_paragraphs p on p.id = 1 + (n * 31 + w * 7919) % ${paragraphs.length}
      ) as picked`.execute(trx);
    await sql`
      insert into tags (name)
      select 'topic-' || n from generate_series(1, ${size.tags}) as n
      on conflict (name) do nothing`.execute(trx);
    await sql`
      insert into post_tags (post_id, tag_id)
      select p.id, t.ids[1 + (p.id * 7919 + j * 13) % array_length(t.ids, 1)]
      from posts p
      cross join (select array_agg(id order by id) as ids from tags) t
      cross join lateral generate_series(0, p.id % 3) as j
      where p.id > ${postBase}
      on conflict do nothing`.execute(trx);
    await sql`
      insert into comments (post_id, author_id, body, created_at)
      select p.id, (select min(id) from users) + (p.id * 31 + c) % ${size.users},
             'Comment ' || c || ' on post ' || p.id, p.created_at + (c || ' minutes')::interval
      from posts p, generate_series(1, ${size.commentsPerPost}) as c
      where p.id > ${postBase}`.execute(trx);
  });
  await sql`analyze`.execute(db);
  const seconds = (performance.now() - started) / 1000;
  // After the timing: what autovacuum would do on a live database before long. Without it the
  // visibility map is empty and index-only scans (a tag's post_tags walk) read the heap too, so
  // a bench just after seeding would measure a state no running database stays in.
  await sql`vacuum`.execute(db);
  const rows =
    size.users + size.posts + size.tags + size.posts * 2 + size.posts * size.commentsPerPost;
  return { rows, seconds, rowsPerSecond: Math.round(rows / seconds) };
}

const wordCount = (text: string) => text.split(/\s+/).filter(Boolean).length;

async function nextId(db: Db, table: 'users' | 'posts'): Promise<number> {
  const { rows } = await sql<{
    max: string | null;
  }>`select max(id) as max from ${sql.table(table)}`.execute(db);
  return Number(rows[0]?.max ?? 0);
}
