import { splitSentences, tokenize } from './tokenize.ts';

// "y" starting a word or following a vowel, before another vowel, is a consonant (you, playing).
const CONSONANT_Y = /(^|[aeiou])y(?=[aeiou])/g;
const VOWEL_GROUP = /[aeiouy]+/g;
// Adjacent vowels pronounced apart (ra-di-o, va-ri-ous, me-di-a, u-su-al, vi-de-o, me-di-um,
// stu-dy-ing, go-ing) where vowel-group counting would merge them into one syllable.
const HIATUS =
  /(?<![cgst])io(?=[uld]|$)|(?<![cgst])ia|(?<![gq])ua|(?<![glp])eo|iu|yi|[aeiou]i(?=ng$)/g;
// A final "e", "es" or "ed" after a consonant is usually silent (make, makes, used) ...
const SILENT_ENDING = /[^aeiouy](?:e|es|ed)$/;
// ... but not consonant + "le" (table, tables), "ed" after t/d (wanted) or "es" after a
// sibilant (boxes, pages, wishes).
const VOICED_ENDING = /(?:[^aeiouyl]l(?:e|es|ed)|[td]ed|(?:[sxzcg]|[cs]h)es)$/;
// A silent "e" before a suffix (lovely, movement, useful) but not in "element" or "settlement".
const SILENT_E_BEFORE_SUFFIX = /[aeiouy][^aeiouyl]e(?:ly|ment|ful|ness|less)$/;

/** Heuristic English syllable count; any word with letters or digits has at least one. */
export function countSyllables(word: string): number {
  const letters = word
    .normalize('NFKD')
    .toLowerCase()
    .replace(/[^a-z]/g, '')
    .replace(CONSONANT_Y, '$1j');
  if (letters.length === 0) return /[\p{L}\p{N}]/u.test(word) ? 1 : 0;

  let syllables = (letters.match(VOWEL_GROUP)?.length ?? 0) + (letters.match(HIATUS)?.length ?? 0);
  if (SILENT_ENDING.test(letters) && !VOICED_ENDING.test(letters)) syllables -= 1;
  if (SILENT_E_BEFORE_SUFFIX.test(letters)) syllables -= 1;
  return Math.max(1, syllables);
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
