import { defineStep } from '../step.ts';

export const reviewStep = defineStep({
  name: 'review',
  description:
    'Hands the post to editors (REVIEW), or publishes it when the run was started with autoPublish.',
  async run({ post, autoPublish, progress }) {
    await progress(50);
    const publish = autoPublish || post.status === 'PUBLISHED';
    await progress(100);
    if (publish) {
      return {
        output: { status: 'PUBLISHED' },
        post: { status: 'PUBLISHED', published_at: post.published_at ?? new Date().toISOString() },
      };
    }
    return { output: { status: 'REVIEW' }, post: { status: 'REVIEW' } };
  },
});
