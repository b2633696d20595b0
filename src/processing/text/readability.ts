import { syllable } from 'syllable';
import { splitSentences, tokenize } from './tokenize.ts';

// Words `syllable` 5.0.1 miscounts, with their dictionary counts (Merriam-Webster): mostly vowels
// pronounced apart (po-em, go-ing, mu-se-um) that its rules merge into one syllable.
const SYLLABLE_CORRECTIONS: ReadonlyMap<string, number> = new Map([
  ['poem', 2],
  ['poems', 2],
  ['poet', 2],
  ['poets', 2],
  ['poetry', 3],
  ['poetic', 3],
  ['science', 2],
  ['sciences', 3],
  ['ideas', 3],
  ['area', 3],
  ['areas', 3],
  ['fluid', 2],
  ['ruin', 2],
  ['ruins', 2],
  ['ruined', 2],
  ['chaos', 2],
  ['going', 2],
  ['doing', 2],
  ['seeing', 2],
  ['undoing', 3],
  ['ongoing', 3],
  ['outgoing', 3],
  ['freeing', 2],
  ['fleeing', 2],
  ['agreeing', 3],
  ['canoeing', 3],
  ['queueing', 2],
  ['cooperate', 4],
  ['coordinate', 4],
  ['museum', 3],
  ['museums', 3],
  ['theater', 3],
  ['theaters', 3],
  ['theatre', 3],
  ['theatres', 3],
  ['society', 4],
  ['anxiety', 4],
]);

/**
 * English syllable count from the `syllable` package, with a few corrected words. Any word with
 * letters or digits has at least one (Flesch counts figures such as "17" as one syllable).
 */
export function countSyllables(word: string): number {
  const key = word.toLowerCase().replaceAll('’', "'");
  const corrected = SYLLABLE_CORRECTIONS.get(key);
  if (corrected !== undefined) return corrected;
  const count = syllable(key);
  return count === 0 && /[\p{L}\p{N}]/u.test(word) ? 1 : count;
}

/**
 * Flesch reading ease, unclamped: very plain prose can exceed 100 and dense prose go negative.
 */
export function fleschReadingEase(text: string): number {
  const words = tokenize(text);
  if (words.length === 0) return 0;
  const sentenceCount = splitSentences(text).length;
  const syllables = words.reduce((sum, word) => sum + countSyllables(word), 0);
  const ease = 206.835 - 1.015 * (words.length / sentenceCount) - 84.6 * (syllables / words.length);
  return Math.round(ease * 10) / 10;
}
