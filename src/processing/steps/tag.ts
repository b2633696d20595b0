import { ensureTags, linkTags } from '../../modules/tag/tag.repository.ts';
import { defineStep } from '../step.ts';
import { slugify } from '../text/seo.ts';

const SUGGESTED_TAGS = 5;

export const tagStep = defineStep({
  name: 'tag',
  description: 'Suggests tags from the keywords and attaches them (existing tags are kept).',
  async run({ post, progress }) {
    await progress(10);
    const suggested = [
      ...new Set(post.keywords.map((keyword) => slugify(keyword, 50)).filter(Boolean)),
    ].slice(0, SUGGESTED_TAGS);
    await progress(100);
    return {
      output: { tags: suggested },
      async apply(trx) {
        const tagIds = await ensureTags(trx, suggested);
        await linkTags(
          trx,
          [...tagIds.values()].map((tagId) => ({ postId: post.id, tagId })),
        );
      },
    };
  },
});
