import { defineStep } from '../step.ts';
import { countWords, normalizeMarkdown, readingMinutes } from '../text/normalize.ts';

export const normalizeStep = defineStep({
  name: 'normalize',
  description: 'Strips markdown to plain text; counts words and reading time.',
  async run({ post, progress }) {
    const text = normalizeMarkdown(post.body);
    await progress(50);
    const wordCount = countWords(text);
    const minutes = readingMinutes(wordCount);
    await progress(100);
    return {
      output: { text, wordCount, readingMinutes: minutes },
      post: { word_count: wordCount, reading_minutes: minutes },
    };
  },
});
