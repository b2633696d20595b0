import { builder } from '../../builder.ts';
import { batchable, computedCache } from '../../context.ts';
import { inKeyOrder } from '../../db/batch.ts';
import { pageLimits, parsePageArgs, toPage } from '../../db/keyset.ts';
import type { TagRow } from '../../db/tables.ts';
import { badInput, notFound } from '../../errors.ts';
import { ALL_POSTS_TAG } from '../post/post.cache.ts';
import {
  countTags,
  firstVisibleUseByTagIds,
  listTags,
  tagCloud,
  tagOrder,
  tagsByIds,
} from './tag.repository.ts';

export const TagNode = builder.loadableNode('Tag', {
  description:
    'A topic label; posts and tags are many-to-many. A tag is visible to a viewer when it labels ' +
    'at least one post that viewer may see (published posts for everyone, their own drafts for ' +
    'authors, every post for editors and admins): elsewhere it is absent, and `node`/`nodes` ' +
    'answer null for its id exactly as for an id that never existed.',
  id: { resolve: (tag: TagRow) => tag.id },
  // Uncached on purpose: visibility depends on the viewer and on every post the tag labels.
  load: batchable(async (ids: string[], ctx) =>
    inKeyOrder(ids, await tagsByIds(ctx.db, ctx.viewer, ids), (tag) => tag.id),
  ),
  fields: (t) => ({
    name: t.exposeString('name', { description: 'Lowercase, dash-separated, unique.' }),
    createdAt: t.loadable({
      type: 'DateTime',
      description:
        'When the earliest post with this tag that the viewer may see was created. Tag names ' +
        'are shared, so this never dates the tag by posts hidden from the viewer.',
      load: batchable(async (ids: string[], ctx) => {
        const rows = await firstVisibleUseByTagIds(ctx.db, ctx.viewer, ids);
        // Absent only when the tag's last visible post went away during this request.
        return inKeyOrder(ids, rows, (row) => row.tag_id).map(
          (row) => row?.first_used_at ?? notFound('Tag'),
        );
      }),
      resolve: (tag) => tag.id,
    }),
  }),
});

builder.queryField('tags', (t) =>
  t.connection(
    {
      type: TagNode,
      description:
        'The tags visible to the viewer (those labelling a post the viewer may see), by name; ' +
        '`totalCount` counts the same tags.',
      resolve: async (_root, args, ctx) => {
        const page = parsePageArgs(args, tagOrder, pageLimits(ctx.config));
        const rows = await listTags(ctx.db, ctx.viewer, page);
        return {
          ...toPage(rows, page, tagOrder, (tag) => ({ value: tag.name, id: tag.id })),
          totalCount: () => countTags(ctx.db, ctx.viewer),
        };
      },
    },
    { name: 'TagConnection' },
    { name: 'TagEdge' },
  ),
);

const TagCount = builder.objectRef<TagRow & { post_count: number }>('TagCount').implement({
  description: 'A tag of the tag cloud with its number of published posts.',
  fields: (t) => ({
    tag: t.field({
      type: TagNode,
      description: 'Labels a published post, so it is visible to everyone.',
      resolve: (row) => row,
    }),
    postCount: t.exposeInt('post_count', { description: 'Published posts with this tag.' }),
  }),
});

builder.queryField('tagCloud', (t) =>
  t.field({
    type: [TagCount],
    description:
      'The most used tags over published posts: the same public list and counts for every ' +
      'viewer (drafts neither add tags nor count).',
    args: { first: t.arg.int({ defaultValue: 20, description: 'At most 100.' }) },
    resolve: async (_root, args, ctx) => {
      const limit = args.first ?? 20;
      if (limit < 1 || limit > 100)
        throw badInput('first must be between 1 and 100', { argument: 'first' });
      return ctx.deps.cache.value(
        'tagCloud',
        `tag-cloud:${limit}`,
        [ALL_POSTS_TAG],
        () => tagCloud(ctx.db, limit),
        computedCache(ctx),
      );
    },
  }),
);
