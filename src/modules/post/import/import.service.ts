import type { Db } from '../../../db/database.ts';
import type { NewPost, PostRow } from '../../../db/tables.ts';
import { defaultSteps } from '../../../processing/registry.ts';
import { currentTraceparent } from '../../../tracing.ts';
import { ensureTags } from '../../tag/tag.repository.ts';
import type { AuthorRef } from './author.ts';
import {
  type InsertedKey,
  insertPosts,
  linkNewPosts,
  type NewLinks,
  queueRuns,
  resolveAuthors,
} from './import.repository.ts';

/** A post checked and ready to write: what createPost, importPosts and `npm run import` share. */
export interface ImportRow {
  title: string;
  body: string;
  slug: string;
  status: 'DRAFT' | 'PUBLISHED';
  tags: readonly string[];
  /** Null: the default author of the write. */
  author: AuthorRef | null;
  /** When it was written (created, and published when PUBLISHED); null: now. */
  createdAt: string | null;
}

export interface ImportWrite<Rows extends PostRow | InsertedKey = PostRow | InsertedKey> {
  /** In the order of the rows: whole rows (bodies included) with `rows: true`, else keys. */
  posts: Rows[];
  /** Users the authors matched or created, by id. */
  authorIds: string[];
  queuedRuns: number;
}

interface WriteOptions {
  defaultAuthorId: string | null;
  queue: { createdBy: string | null } | null;
  /** Return each post's whole row (true) or only its id, slug and created_at (false). */
  rows: boolean;
}

/**
 * Writes checked rows inside the caller's transaction: authors matched or created, posts, tags
 * and their links, and (when `queue` is given) a pipeline run per post; one statement per
 * table whatever the row count. Slugs must be unique among the rows.
 */
export async function writeImport(
  trx: Db,
  rows: readonly ImportRow[],
  options: WriteOptions & { rows: true },
): Promise<ImportWrite<PostRow>>;
export async function writeImport(
  trx: Db,
  rows: readonly ImportRow[],
  options: WriteOptions,
): Promise<ImportWrite>;
export async function writeImport(
  trx: Db,
  rows: readonly ImportRow[],
  options: WriteOptions,
): Promise<ImportWrite> {
  const authors = rows.flatMap((row) => (row.author ? [row.author] : []));
  const authorIds = authors.length > 0 ? await resolveAuthors(trx, authors) : new Map();
  // A processed post starts QUEUED (unless published) as startPipeline would leave it, so the
  // runs need no update of the posts afterwards.
  const queued = options.queue !== null;
  const newPosts: NewPost[] = rows.map((row) => {
    const authorId = row.author ? authorIds.get(row.author.email) : options.defaultAuthorId;
    if (!authorId) throw new Error(`No author for the post "${row.slug}"`);
    const createdAt = row.createdAt ?? undefined;
    const queuedNow = queued && row.status !== 'PUBLISHED';
    return {
      author_id: authorId,
      title: row.title,
      body: row.body,
      slug: row.slug,
      status: queuedNow ? 'QUEUED' : row.status,
      created_at: createdAt,
      updated_at: queuedNow ? undefined : createdAt,
      published_at: row.status === 'PUBLISHED' ? (row.createdAt ?? new Date().toISOString()) : null,
    };
  });
  const inserted: (InsertedKey | PostRow)[] = await insertPosts(trx, newPosts, options.rows);
  // RETURNING promises no order; slugs are unique, so they pair each row with its input.
  const bySlug = new Map(inserted.map((post) => [post.slug, post]));
  const posts = rows.map((row) => bySlug.get(row.slug)!);
  const tagIds = await ensureTags(trx, [...new Set(rows.flatMap((row) => row.tags))]);
  const links: NewLinks = {
    postIds: [],
    tagIds: [],
    postCreatedAts: [],
    postPublished: [],
    postAuthorIds: [],
  };
  rows.forEach((row, index) => {
    const post = posts[index]!;
    const published = newPosts[index]!.status === 'PUBLISHED' ? 'true' : 'false';
    const authorId = newPosts[index]!.author_id;
    for (const name of row.tags) {
      links.postIds.push(post.id);
      links.tagIds.push(tagIds.get(name)!);
      links.postCreatedAts.push(post.created_at);
      links.postPublished.push(published);
      links.postAuthorIds.push(authorId);
    }
  });
  await linkNewPosts(trx, links);
  const queuedRuns = options.queue
    ? await queueRuns(
        trx,
        posts.map((post) => post.id),
        defaultSteps,
        options.queue.createdBy,
        currentTraceparent() ?? null,
      )
    : 0;
  return {
    posts,
    authorIds: [...new Set(newPosts.map((post) => post.author_id))],
    queuedRuns,
  };
}
