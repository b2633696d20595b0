import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.ts';

/**
 * A link's copies of its post's status and author (migration 20261207000000) choose the index a
 * tag page walks, so a stale copy hides a published post from readers. The pipeline's tag step
 * links tags without locking the post, while an editor may publish it at the same moment: each
 * order of the two transactions must leave the copy equal to the post's status.
 */
let database: TestDatabase;
let writer: pg.Client;
let linker: pg.Client;
let observer: pg.Client;
let postId: string;
let tagIds: string[];

beforeAll(async () => {
  database = await createTestDatabase();
  [writer, linker, observer] = [0, 1, 2].map(
    () => new pg.Client({ connectionString: database.url }),
  ) as [pg.Client, pg.Client, pg.Client];
  await Promise.all([writer.connect(), linker.connect(), observer.connect()]);
  const { rows: users } = await observer.query<{ id: string }>(
    `insert into users (email, name) values ('copies@example.com', 'Copies') returning id`,
  );
  const { rows: posts } = await observer.query<{ id: string }>(
    `insert into posts (author_id, title, slug, body, status)
     values ($1, 'Copied', 'copied', 'body', 'DRAFT') returning id`,
    [users[0]!.id],
  );
  postId = posts[0]!.id;
  const { rows: tags } = await observer.query<{ id: string }>(
    `insert into tags (name) values ('first'), ('second') returning id`,
  );
  tagIds = tags.map((tag) => tag.id);
});

afterAll(async () => {
  await Promise.all([writer, linker, observer].map((client) => client?.end()));
  await database?.drop();
});

/** The backends waiting on a lock, besides the observer. */
async function waitingOnLock(): Promise<number> {
  const { rows } = await observer.query<{ count: string }>(
    `select count(*) from pg_stat_activity
     where datname = current_database() and wait_event_type = 'Lock'`,
  );
  return Number(rows[0]!.count);
}

async function until(condition: () => Promise<boolean>): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('condition not reached');
}

async function copies(): Promise<{ tag_id: string; post_published: boolean }[]> {
  const { rows } = await observer.query(
    'select tag_id, post_published from post_tags where post_id = $1 order by tag_id',
    [postId],
  );
  return rows;
}

describe("a link's copies under concurrent writes of its post", () => {
  it('a link inserted while the post is being published waits and copies the new status', async () => {
    await writer.query('begin');
    await writer.query(`update posts set status = 'PUBLISHED' where id = $1`, [postId]);
    await linker.query('begin');
    const linked = linker.query('insert into post_tags (post_id, tag_id) values ($1, $2)', [
      postId,
      tagIds[0],
    ]);
    await until(async () => (await waitingOnLock()) === 1);
    await writer.query('commit');
    await linked;
    await linker.query('commit');
    expect(await copies()).toEqual([{ tag_id: tagIds[0], post_published: true }]);
  });

  it('a status change while a link is being inserted waits and updates the new link', async () => {
    await linker.query('begin');
    await linker.query('insert into post_tags (post_id, tag_id) values ($1, $2)', [
      postId,
      tagIds[1],
    ]);
    await writer.query('begin');
    const unpublished = writer.query(`update posts set status = 'DRAFT' where id = $1`, [postId]);
    await until(async () => (await waitingOnLock()) === 1);
    await linker.query('commit');
    await unpublished;
    await writer.query('commit');
    expect(await copies()).toEqual([
      { tag_id: tagIds[0], post_published: false },
      { tag_id: tagIds[1], post_published: false },
    ]);
  });
});
