import { countWords } from './normalize.ts';
import { splitParagraphs, tokenize } from './tokenize.ts';

// Letters that NFKD does not decompose into an ASCII base letter plus combining marks.
const TRANSLITERATIONS: Readonly<Record<string, string>> = {
  ß: 'ss',
  æ: 'ae',
  œ: 'oe',
  ø: 'o',
  ł: 'l',
  đ: 'd',
  ð: 'd',
  þ: 'th',
  ı: 'i',
};
const TRANSLITERATED = new RegExp(`[${Object.keys(TRANSLITERATIONS).join('')}]`, 'g');
const INTRO_MIN_WORDS = 100;

export interface SeoInput {
  title: string;
  text: string;
  keywords: readonly string[];
  metaDescription: string;
  readingEase: number;
}

export interface SeoCheck {
  name: string;
  passed: boolean;
  weight: number;
}

export interface SeoReport {
  score: number;
  checks: SeoCheck[];
}

/** URL slug: lowercase ASCII letters and digits joined by single dashes; '' if none remain. */
export function slugify(title: string, maxLength = 80): string {
  assertPositiveInteger(maxLength, 'maxLength');
  return title
    .toLowerCase()
    .replace(TRANSLITERATED, (letter) => TRANSLITERATIONS[letter] ?? '')
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, maxLength)
    .replace(/-+$/, '');
}

/** Whitespace-collapsed summary cut at a word boundary, marked with '…' when shortened. */
export function metaDescription(summary: string, maxLength = 160): string {
  assertPositiveInteger(maxLength, 'maxLength');
  const text = summary.replace(/\s+/g, ' ').trim();
  if (text.length <= maxLength) return text;

  const room = maxLength - 1; // the ellipsis takes one character
  const lastSpace = text.lastIndexOf(' ', room);
  // A single word longer than the limit has no boundary to cut at, so it is cut mid-word.
  const cut = lastSpace > 0 ? text.slice(0, lastSpace) : text.slice(0, room);
  return `${cut.replace(/[\s,;:.!?\-–—]+$/, '')}…`;
}

/** Weighted on-page checks; the weights sum to 100, so the score is the percentage passed. */
export function seoScore(input: SeoInput): SeoReport {
  const title = input.title.trim();
  const description = input.metaDescription.trim();
  const topKeyword = tokenize(input.keywords[0] ?? '');
  const bodyWords = tokenize(input.text);
  // Headings are paragraphs of their own after normalization, so the introduction is the first
  // paragraph or the first 100 words, whichever is longer.
  const firstParagraph = splitParagraphs(input.text.trim())[0] ?? '';
  const intro = bodyWords.slice(0, Math.max(INTRO_MIN_WORDS, countWords(firstParagraph)));

  const checks: SeoCheck[] = [
    { name: 'titleLength', passed: title.length >= 30 && title.length <= 65, weight: 20 },
    {
      name: 'metaDescriptionLength',
      passed: description.length >= 70 && description.length <= 160,
      weight: 15,
    },
    { name: 'wordCount', passed: bodyWords.length >= 300, weight: 20 },
    { name: 'keywordInTitle', passed: containsPhrase(tokenize(title), topKeyword), weight: 15 },
    { name: 'keywordInIntroduction', passed: containsPhrase(intro, topKeyword), weight: 10 },
    { name: 'readability', passed: input.readingEase >= 50, weight: 20 },
  ];
  const score = checks.reduce((sum, check) => sum + (check.passed ? check.weight : 0), 0);
  return { score, checks };
}

function containsPhrase(words: readonly string[], phrase: readonly string[]): boolean {
  if (phrase.length === 0) return false;
  return words.some((_, start) => phrase.every((word, offset) => words[start + offset] === word));
}

function assertPositiveInteger(value: number, name: string): void {
  if (!Number.isInteger(value) || value < 1)
    throw new RangeError(`${name} must be a positive integer`);
}
