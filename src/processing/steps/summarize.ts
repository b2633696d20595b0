import { defineStep } from '../step.ts';
import { summarize } from '../text/summarize.ts';
import { plainText } from './keywords.ts';

export const summarizeStep = defineStep({
  name: 'summarize',
  description: 'Extractive summary: the highest-scoring sentences in their original order.',
  async run(context) {
    await context.progress(30);
    const summary = summarize(plainText(context), 3);
    await context.progress(100);
    return { output: { summary }, post: { summary } };
  },
});
