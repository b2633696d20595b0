import { sql } from 'kysely';
import { defineStep, type StepContext } from '../step.ts';
import { extractKeywords } from '../text/keywords.ts';
import { normalizeMarkdown } from '../text/normalize.ts';

const CORPUS_SIZE = 500;

/** Plain text from the normalize step when it ran in this run, else from the body. */
export function plainText({ outputs, post }: Pick<StepContext, 'outputs' | 'post'>): string {
  const normalized = outputs.normalize as { text?: string } | undefined;
  return normalized?.text ?? normalizeMarkdown(post.body);
}

export const keywordsStep = defineStep({
  name: 'keywords',
  description: 'TF-IDF keywords against the most recent published posts.',
  async run(context) {
    const { db, post, progress } = context;
    // The stored plain text when the normalize step has written it; the body (to parse here) only
    // for posts it has not, so a run transfers and parses each body at most once.
    const corpus = await db
      .selectFrom('posts')
      .select([
        'plain_text',
        sql<string | null>`case when plain_text is null then body end`.as('body'),
      ])
      .where('status', '=', 'PUBLISHED')
      .where('id', '!=', post.id)
      .orderBy('published_at', 'desc')
      .limit(CORPUS_SIZE)
      .execute();
    await progress(40);
    const keywords = extractKeywords(
      `${post.title}\n${plainText(context)}`,
      corpus.map((row) => row.plain_text ?? normalizeMarkdown(row.body ?? '')),
    );
    await progress(100);
    return {
      output: { keywords, corpusSize: corpus.length },
      post: { keywords: keywords.map((keyword) => keyword.term) },
    };
  },
});
