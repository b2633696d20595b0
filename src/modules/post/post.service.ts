import { z } from 'zod';
import type { Context } from '../../context.ts';
import { withPgErrors } from '../../db/pg-errors.ts';
import { isTimestamp } from '../../db/postgres-values.ts';
import type { PostRow, PostStatus } from '../../db/tables.ts';
import { transact } from '../../db/transaction.ts';
import { appError, badInput } from '../../errors.ts';
import { slugify } from '../../processing/text/seo.ts';
import { parseInput } from '../../validation.ts';
import { isStaff } from '../auth/viewer.ts';
import { PIPELINE_TAG } from '../pipeline/pipeline.publish.ts';
import { ensureTags, linkTags, unlinkTagsExcept } from '../tag/tag.repository.ts';
import { ALL_USERS_TAG } from '../user/user.cache.ts';
import { parseAuthor } from './import/author.ts';
import { type ImportRow, writeImport } from './import/import.service.ts';
import { ALL_POSTS_TAG, postCacheTags } from './post.cache.ts';
import { requireEditable, requireWriter } from './post.policy.ts';
import { deletePostRow, insertPostWithTags, lockPost, updatePostRow } from './post.repository.ts';

const MAX_TAGS_PER_POST = 20;
const slugPattern = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

const title = z.string().trim().min(1, 'must not be empty').max(200);
const body = z.string().max(200_000);
const slug = z
  .string()
  .max(120)
  .regex(slugPattern, 'use lowercase letters, digits and single dashes');
const tagName = z
  .string()
  .trim()
  .toLowerCase()
  .max(50)
  .regex(slugPattern, 'use lowercase letters, digits and single dashes');
const tags = z
  .array(tagName)
  .max(MAX_TAGS_PER_POST)
  .transform((names) => [...new Set(names)]);

const postStatuses = [
  'DRAFT',
  'QUEUED',
  'PROCESSING',
  'REVIEW',
  'PUBLISHED',
  'FAILED',
  'ARCHIVED',
] as const;
/** Pipeline-owned states (QUEUED, PROCESSING, FAILED) are not set by hand. */
const statusAmong = (allowed: readonly PostStatus[]) =>
  z
    .enum(postStatuses)
    .nullish()
    .refine((status) => status == null || allowed.includes(status), {
      message: `must be one of ${allowed.join(', ')}`,
    });

const author = z
  .string()
  .max(400)
  .transform((text, check) => {
    const parsed = parseAuthor(text);
    if (typeof parsed !== 'string') return parsed;
    check.issues.push({ code: 'custom', message: parsed, input: text });
    return z.NEVER;
  });

/** A new post as createPost, importPosts and `npm run import` take it. */
export const newPostInput = z.object({
  title,
  body,
  slug: slug.nullish(),
  status: statusAmong(['DRAFT', 'PUBLISHED']),
  tags: tags.nullish(),
  author: author.nullish(),
  createdAt: z
    .string()
    .refine(isTimestamp, 'must be an RFC 3339 timestamp of a real date')
    .nullish(),
});

const postChanges = z.object({
  title: title.nullish(),
  body: body.nullish(),
  slug: slug.nullish(),
  status: statusAmong(['DRAFT', 'REVIEW', 'PUBLISHED', 'ARCHIVED']),
});

export type NewPostInput = z.input<typeof newPostInput>;
export type CheckedNewPost = z.output<typeof newPostInput>;
export type PostChangesInput = z.input<typeof postChanges>;

const slugConflict = { posts_slug_key: 'A post with this slug already exists' };

function requirePublishRight(ctx: Context, status: PostStatus | null | undefined) {
  if (status === 'PUBLISHED' && !isStaff(ctx.viewer)) {
    throw appError('FORBIDDEN', 'Only editors can publish posts');
  }
}

/** A problem of one input of a batch, by its index and field. */
export interface ImportProblem {
  index: number;
  field: string;
  message: string;
}

/**
 * Checked inputs as rows to write, or what is wrong with them: a slug derived from a title
 * without letters or digits, a slug used twice in the batch. `names` names each input in messages.
 */
export function toImportRows(
  inputs: readonly CheckedNewPost[],
  names: readonly string[],
): { rows: ImportRow[]; problems: ImportProblem[] } {
  const problems: ImportProblem[] = [];
  const firstBySlug = new Map<string, number>();
  const rows = inputs.map((input, index): ImportRow => {
    const value = input.slug ?? slugify(input.title, 120);
    if (!value) {
      problems.push({
        index,
        field: 'slug',
        message: 'title has no letters or digits to derive a slug',
      });
    }
    const first = firstBySlug.get(value);
    if (value && first !== undefined) {
      problems.push({ index, field: 'slug', message: `duplicates the slug of ${names[first]}` });
    } else firstBySlug.set(value, index);
    return {
      title: input.title,
      body: input.body,
      slug: value,
      status: input.status === 'PUBLISHED' ? 'PUBLISHED' : 'DRAFT',
      tags: input.tags ?? [],
      author: input.author ?? null,
      createdAt: input.createdAt ?? null,
    };
  });
  return { rows, problems };
}

/**
 * Rows to write for checked inputs, or FORBIDDEN / BAD_USER_INPUT naming every problem by the
 * input's path in the mutation (`input` for createPost, `input.posts.2` for importPosts).
 */
function checkedRows(
  ctx: Context,
  inputs: readonly CheckedNewPost[],
  pathOf: (index: number) => string,
): ImportRow[] {
  for (const input of inputs) {
    requirePublishRight(ctx, input.status);
    if ((input.author || input.createdAt) && !isStaff(ctx.viewer)) {
      throw appError('FORBIDDEN', 'Only editors can set the author or the creation time');
    }
  }
  const names = inputs.map((_, index) => pathOf(index));
  const { rows, problems } = toImportRows(inputs, names);
  const problem = problems[0];
  if (problem) {
    // Like parseInput: the message names the first problem, `fields` lists them all.
    const fields = problems.map((each) => ({
      path: `${names[each.index]}.${each.field}`,
      message: each.message,
    }));
    throw badInput(`Invalid input at ${fields[0]!.path}: ${problem.message}`, { fields });
  }
  return rows;
}

/**
 * Rows in one transaction (authors, posts, tags, links, runs: a statement each), then
 * invalidation. The posts come back whole with `returnRows`, else null (only their count).
 */
async function writeRows(
  ctx: Context,
  defaultAuthorId: string,
  rows: readonly ImportRow[],
  processPosts: boolean,
  returnRows: boolean,
): Promise<ImportResult> {
  return withPgErrors(
    () =>
      transact(ctx.db, async (trx, afterCommit) => {
        const written = await writeImport(trx, rows, {
          defaultAuthorId,
          queue: processPosts ? { createdBy: defaultAuthorId } : null,
          rows: returnRows,
        });
        afterCommit(() =>
          ctx.deps.cache.invalidate([
            ALL_POSTS_TAG,
            ...written.authorIds.map((id) => `user-posts:${id}`),
            ...(rows.some((row) => row.author) ? [ALL_USERS_TAG] : []),
            ...(written.queuedRuns > 0 ? [PIPELINE_TAG] : []),
          ]),
        );
        return {
          count: written.posts.length,
          posts: returnRows ? (written.posts as PostRow[]) : null,
          queuedRuns: written.queuedRuns,
        };
      }),
    slugConflict,
  );
}

/**
 * The viewer's own post written now: one statement (post, tags and links: see
 * insertPostWithTags) and one cache invalidation. With an author or a creation time (staff only)
 * it takes the import's transaction instead.
 */
export async function createPost(ctx: Context, input: NewPostInput): Promise<PostRow> {
  const viewer = requireWriter(ctx);
  const rows = checkedRows(ctx, [parseInput(newPostInput, input)], () => 'input');
  const row = rows[0]!;
  if (row.author || row.createdAt) {
    return (await writeRows(ctx, viewer.id, rows, false, true)).posts![0]!;
  }
  const created = await withPgErrors(
    () =>
      insertPostWithTags(
        ctx.db,
        {
          author_id: viewer.id,
          title: row.title,
          body: row.body,
          slug: row.slug,
          status: row.status,
          published_at: row.status === 'PUBLISHED' ? new Date().toISOString() : null,
        },
        row.tags,
      ),
    slugConflict,
  );
  await ctx.deps.cache.invalidate([ALL_POSTS_TAG, `user-posts:${viewer.id}`]);
  return created;
}

/** What importPosts wrote. */
export interface ImportResult {
  /** Posts created. */
  count: number;
  /** The posts created, in input order; null unless asked for (`returnRows`). */
  posts: PostRow[] | null;
  queuedRuns: number;
}

/**
 * All posts in one transaction, one statement per table: a bad row rejects the batch. With
 * `process`, a pipeline run is queued for each post in the same transaction. The created rows
 * come back only with `returnRows` (the mutation's selection asks for them).
 */
export async function importPosts(
  ctx: Context,
  inputs: NewPostInput[],
  options: { process: boolean; returnRows: boolean },
): Promise<ImportResult> {
  const viewer = requireWriter(ctx);
  if (inputs.length > ctx.config.MAX_IMPORT_POSTS) {
    throw badInput(`At most ${ctx.config.MAX_IMPORT_POSTS} posts per import`);
  }
  const rows = checkedRows(
    ctx,
    parseInput(z.array(newPostInput), inputs, 'input.posts'),
    (index) => `input.posts.${index}`,
  );
  return writeRows(ctx, viewer.id, rows, options.process, options.returnRows);
}

export async function updatePost(
  ctx: Context,
  id: string,
  input: PostChangesInput,
): Promise<PostRow> {
  const viewer = requireWriter(ctx);
  const changes = parseInput(postChanges, input);
  requirePublishRight(ctx, changes.status);
  return withPgErrors(
    () =>
      transact(ctx.db, async (trx, afterCommit) => {
        const post = requireEditable(viewer, await lockPost(trx, id));
        const updated = await updatePostRow(trx, id, {
          title: changes.title ?? undefined,
          body: changes.body ?? undefined,
          slug: changes.slug ?? undefined,
          status: changes.status ?? undefined,
          published_at:
            changes.status === 'PUBLISHED' && post.status !== 'PUBLISHED'
              ? new Date().toISOString()
              : undefined,
        });
        afterCommit(async () => {
          await ctx.deps.cache.invalidate(postCacheTags(post));
          if (updated!.status !== post.status) {
            ctx.deps.pubsub.publish('postStatusChanged', {
              postId: post.id,
              authorId: post.author_id,
              status: updated!.status,
            });
          }
        });
        return updated!;
      }),
    slugConflict,
  );
}

export async function deletePost(ctx: Context, id: string): Promise<void> {
  const viewer = requireWriter(ctx);
  await withPgErrors(() =>
    transact(ctx.db, async (trx, afterCommit) => {
      const post = requireEditable(viewer, await lockPost(trx, id));
      afterCommit(() => ctx.deps.cache.invalidate(postCacheTags(post)));
      await deletePostRow(trx, id);
    }),
  );
}

/** Replaces the post's tags; the post counts as updated, and is returned as it is now. */
export async function setPostTags(ctx: Context, id: string, names: string[]): Promise<PostRow> {
  const viewer = requireWriter(ctx);
  const wanted = parseInput(tags, names, 'input.tags');
  return withPgErrors(() =>
    transact(ctx.db, async (trx, afterCommit) => {
      const post = requireEditable(viewer, await lockPost(trx, id));
      afterCommit(() => ctx.deps.cache.invalidate(postCacheTags(post)));
      const tagIds = [...(await ensureTags(trx, wanted)).values()];
      await unlinkTagsExcept(trx, id, tagIds);
      await linkTags(
        trx,
        tagIds.map((tagId) => ({ postId: id, tagId })),
      );
      return (await updatePostRow(trx, id, {}))!;
    }),
  );
}
