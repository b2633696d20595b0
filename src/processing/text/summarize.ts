import { contentTerms, countTerms, splitSentences } from './tokenize.ts';

// The opening sentence of a post usually states its topic; a multiplier (rather than an
// additive bonus) never lifts an off-topic greeting above a sentence that carries the topic.
const LEAD_SENTENCE_BONUS = 1.1;

/**
 * Extractive summary: the `maxSentences` sentences densest in the text's frequent terms, in
 * their original order. Dividing by the square root of the sentence's term count keeps long
 * sentences from winning on length alone.
 */
export function summarize(text: string, maxSentences = 3): string {
  if (!Number.isInteger(maxSentences) || maxSentences < 0) {
    throw new RangeError('maxSentences must be a non-negative integer');
  }
  const sentences = splitSentences(text);
  if (sentences.length <= maxSentences) return sentences.join(' ');

  const sentenceTerms = sentences.map((sentence) => contentTerms(sentence));
  const frequency = countTerms(sentenceTerms.flat());

  return sentences
    .map((sentence, position) => {
      const terms = sentenceTerms[position] ?? [];
      const weight = terms.reduce((sum, term) => sum + (frequency.get(term) ?? 0), 0);
      const density = terms.length > 0 ? weight / Math.sqrt(terms.length) : 0;
      return {
        sentence,
        position,
        score: position === 0 ? density * LEAD_SENTENCE_BONUS : density,
      };
    })
    .sort((a, b) => b.score - a.score || a.position - b.position)
    .slice(0, maxSentences)
    .sort((a, b) => a.position - b.position)
    .map(({ sentence }) => sentence)
    .join(' ');
}
