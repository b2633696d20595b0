import { z } from 'zod';
import type { Context } from '../../context.ts';
import { withPgErrors } from '../../db/pg-errors.ts';
import type { NewPost, PostRow, PostStatus } from '../../db/tables.ts';
import { transact } from '../../db/transaction.ts';
import { appError, badInput } from '../../errors.ts';
import { slugify } from '../../pipeline/text/seo.ts';
import { parseInput } from '../../validation.ts';
import { isStaff } from '../auth/viewer.ts';
import { ensureTags, linkTags, unlinkTagsExcept } from '../tag/tag.repository.ts';
import { ALL_POSTS_TAG, postCacheTags } from './post.cache.ts';
import { requireEditable, requireWriter } from './post.policy.ts';
import {
  deletePostRow,
  insertPosts,
  insertPostWithTags,
  lockPost,
  updatePostRow,
} from './post.repository.ts';

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

const newPostInput = z.object({
  title,
  body,
  slug: slug.nullish(),
  status: statusAmong(['DRAFT', 'PUBLISHED']),
  tags: tags.nullish(),
});

const postChanges = z.object({
  title: title.nullish(),
  body: body.nullish(),
  slug: slug.nullish(),
  status: statusAmong(['DRAFT', 'REVIEW', 'PUBLISHED', 'ARCHIVED']),
});

export type NewPostInput = z.input<typeof newPostInput>;
export type PostChangesInput = z.input<typeof postChanges>;

const slugConflict = { posts_slug_key: 'A post with this slug already exists' };

function slugFor(input: { slug?: string | null; title: string }, path: string): string {
  const value = input.slug ?? slugify(input.title, 120);
  if (!value)
    throw badInput(`Invalid input at ${path}: title has no letters or digits to derive a slug`);
  return value;
}

function requirePublishRight(ctx: Context, status: PostStatus | null | undefined) {
  if (status === 'PUBLISHED' && !isStaff(ctx.viewer)) {
    throw appError('FORBIDDEN', 'Only editors can publish posts');
  }
}

async function createMany(
  ctx: Context,
  inputs: z.output<typeof newPostInput>[],
): Promise<PostRow[]> {
  const viewer = requireWriter(ctx);
  for (const input of inputs) requirePublishRight(ctx, input.status);
  const rows: NewPost[] = inputs.map((input, index) => ({
    author_id: viewer.id,
    title: input.title,
    body: input.body,
    slug: slugFor(input, inputs.length > 1 ? `input.${index}.slug` : 'input.slug'),
    status: input.status ?? 'DRAFT',
    published_at: input.status === 'PUBLISHED' ? new Date().toISOString() : null,
  }));
  const seen = new Map<string, number>();
  rows.forEach((row, index) => {
    const first = seen.get(row.slug);
    if (first !== undefined) {
      throw badInput(`Invalid input at input.${index}.slug: duplicates the slug of input.${first}`);
    }
    seen.set(row.slug, index);
  });
  return withPgErrors(
    () =>
      transact(ctx.db, async (trx, afterCommit) => {
        const inserted = await insertPosts(trx, rows);
        afterCommit(() => ctx.deps.cache.invalidate([ALL_POSTS_TAG, `user-posts:${viewer.id}`]));
        // RETURNING promises no order; slugs are unique, so they pair each row with its input.
        const bySlug = new Map(inserted.map((post) => [post.slug, post]));
        const created = rows.map((row) => bySlug.get(row.slug)!);
        const tagNames = [...new Set(inputs.flatMap((input) => input.tags ?? []))];
        const tagIds = await ensureTags(trx, tagNames);
        await linkTags(
          trx,
          inputs.flatMap((input, index) =>
            (input.tags ?? []).map((name) => ({
              postId: created[index]!.id,
              tagId: tagIds.get(name)!,
            })),
          ),
        );
        return created;
      }),
    slugConflict,
  );
}

/**
 * One statement (post, tags and links: see insertPostWithTags) and one cache invalidation, where
 * the batch path (createMany) takes a transaction of three.
 */
export async function createPost(ctx: Context, input: NewPostInput): Promise<PostRow> {
  const viewer = requireWriter(ctx);
  const parsed = parseInput(newPostInput, input);
  requirePublishRight(ctx, parsed.status);
  const created = await withPgErrors(
    () =>
      insertPostWithTags(
        ctx.db,
        {
          author_id: viewer.id,
          title: parsed.title,
          body: parsed.body,
          slug: slugFor(parsed, 'input.slug'),
          status: parsed.status ?? 'DRAFT',
          published_at: parsed.status === 'PUBLISHED' ? new Date().toISOString() : null,
        },
        parsed.tags ?? [],
      ),
    slugConflict,
  );
  await ctx.deps.cache.invalidate([ALL_POSTS_TAG, `user-posts:${viewer.id}`]);
  return created;
}

/** All posts in one transaction, one statement per table: a bad row rejects the batch. */
export async function importPosts(ctx: Context, inputs: NewPostInput[]): Promise<PostRow[]> {
  requireWriter(ctx);
  if (inputs.length > ctx.config.MAX_IMPORT_POSTS) {
    throw badInput(`At most ${ctx.config.MAX_IMPORT_POSTS} posts per import`);
  }
  return createMany(ctx, parseInput(z.array(newPostInput), inputs));
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
  const wanted = parseInput(tags, names, 'tags');
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
