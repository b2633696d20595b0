import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../../src/db/database.ts';
import type { PostStatus, Role } from '../../src/db/tables.ts';
import { insertToken } from '../../src/modules/auth/auth.repository.ts';

export interface TestUser {
  id: string;
  globalId: string;
  token: string;
}

export const globalId = (type: string, id: string) =>
  Buffer.from(`${type}:${id}`).toString('base64url');
export const localId = (id: string) => Buffer.from(id, 'base64url').toString('utf8').split(':')[1]!;

export async function createUser(
  db: Db,
  role: Role = 'AUTHOR',
  name = `User ${role}`,
): Promise<TestUser> {
  const email = `${role.toLowerCase()}-${randomBytes(4).toString('hex')}@example.com`;
  const { id } = await db
    .insertInto('users')
    .values({ email, name, role })
    .returning('id')
    .executeTakeFirstOrThrow();
  const { token } = await insertToken(db, id, 'test');
  return { id, globalId: globalId('User', id), token };
}

export interface PostSeed {
  authorId: string;
  title?: string;
  body?: string;
  status?: PostStatus;
  createdAt?: string;
}

let sequence = 0;

export async function createPosts(
  db: Db,
  seeds: PostSeed[],
): Promise<{ id: string; slug: string }[]> {
  if (seeds.length === 0) return [];
  return db
    .insertInto('posts')
    .values(
      seeds.map((seed) => {
        sequence += 1;
        const title = seed.title ?? `Post number ${sequence}`;
        return {
          author_id: seed.authorId,
          title,
          slug: `post-${sequence}-${randomBytes(3).toString('hex')}`,
          body: seed.body ?? `Body of ${title}. It talks about pipelines and GraphQL.`,
          status: seed.status ?? 'PUBLISHED',
          published_at: (seed.status ?? 'PUBLISHED') === 'PUBLISHED' ? sql<string>`now()` : null,
          ...(seed.createdAt ? { created_at: seed.createdAt } : {}),
        };
      }),
    )
    .returning(['id', 'slug'])
    .execute();
}
