import { defineStep } from '../step.ts';
import { countWords, normalizeMarkdown, readingMinutes } from '../text/normalize.ts';

export const normalizeStep = defineStep({
  name: 'normalize',
  description:
    'Parses the Markdown body to plain text (stored for later steps and runs); counts words and reading time.',
  async run({ post, progress }) {
    const text = normalizeMarkdown(post.body);
    await progress(50);
    const wordCount = countWords(text);
    const minutes = readingMinutes(wordCount);
    await progress(100);
    return {
      output: { text, wordCount, readingMinutes: minutes },
      post: { word_count: wordCount, reading_minutes: minutes },
      // Only for the body it was made from: an edit committed while this step ran keeps the
      // column null (its trigger cleared it) rather than holding text of the old body.
      async apply(trx) {
        await trx
          .updateTable('posts')
          .set({ plain_text: text })
          .where('id', '=', post.id)
          .where('body', '=', post.body)
          .execute();
      },
    };
  },
});
