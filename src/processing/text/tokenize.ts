// A word is a run of letters/digits, optionally joined by inner apostrophes ("don't"). Combining
// marks may continue a word so decomposed accents and Indic vowel signs do not split it.
const WORD = /[\p{L}\p{N}][\p{L}\p{M}\p{N}]*(?:['’][\p{L}\p{N}][\p{L}\p{M}\p{N}]*)*/gu;
const NUMBER = /^\p{N}+$/u;
const PARAGRAPH_BREAK = /\n[^\S\n]*\n/;
// Unicode sentence boundaries (UAX #29) know decimals, ellipses, closing quotes and lowercase
// continuations ("e.g. a hammer"). Node's ICU has no abbreviation suppressions, so a break after
// an abbreviation that almost never ends a sentence ("Dr. Who", "e.g. Python") is undone below.
const SENTENCES = new Intl.Segmenter('en', { granularity: 'sentence' });
const NON_FINAL_ABBREVIATION =
  /(?:^|[\s(])(?:mr|mrs|ms|dr|prof|sr|jr|st|vs|cf|viz|fig|figs|approx|e\.g|i\.e)\.$/i;
const MIN_TERM_LENGTH = 3;

export const STOP_WORDS: ReadonlySet<string> = new Set(
  `a about above across after again against all almost along already also although always am
  among an and another any anyone anything are aren't around as at be because been before being
  below between both but by can can't cannot could couldn't did didn't do does doesn't doing
  don't down during each either else even ever every few for from further get gets got had hadn't
  has hasn't have haven't having he he'd he'll he's her here here's hers herself him himself his
  how how's however i i'd i'll i'm i've if in into is isn't it it's its itself just let's many
  may me might more most much must mustn't my myself neither no nor not now of off often on once
  one only or other others our ours ourselves out over own per quite rather really same shall
  shan't she she'd she'll she's should shouldn't since so some still such than that that's the
  their theirs them themselves then there there's these they they'd they'll they're they've this
  those though through thus to too under until up upon us very via was wasn't we we'd we'll we're
  we've were weren't what what's when when's where where's whether which while who who's whom
  whose why why's will with within without won't would wouldn't yet you you'd you'll you're
  you've your yours yourself yourselves`.split(/\s+/),
);

/** Lowercased words; typographic apostrophes become ASCII so "don’t" and "don't" are one term. */
export function tokenize(text: string): string[] {
  return (text.match(WORD) ?? []).map((word) =>
    // NFC so a precomposed and a decomposed "café" count as the same term.
    word.normalize('NFC').toLowerCase().replaceAll('’', "'"),
  );
}

/** Words that carry topic: no stop words, no bare numbers, nothing shorter than three letters. */
export function contentTerms(text: string): string[] {
  return tokenize(text).filter(
    (token) =>
      Array.from(token).length >= MIN_TERM_LENGTH && !STOP_WORDS.has(token) && !NUMBER.test(token),
  );
}

export function countTerms(terms: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const term of terms) counts.set(term, (counts.get(term) ?? 0) + 1);
  return counts;
}

export function splitParagraphs(text: string): string[] {
  return text.split(PARAGRAPH_BREAK);
}

/**
 * Sentences by Unicode's sentence rules within each paragraph, so a paragraph break (a heading
 * without punctuation) always ends one; whitespace inside a sentence collapses to one space.
 */
export function splitSentences(text: string): string[] {
  return splitParagraphs(text).flatMap((paragraph) => {
    const sentences: string[] = [];
    let pending = '';
    // Collapsed first: ICU treats a lone newline as a hard break, but wrapped lines are one sentence.
    for (const { segment } of SENTENCES.segment(paragraph.replace(/\s+/g, ' ').trim())) {
      pending += segment;
      const sentence = pending.trim();
      if (NON_FINAL_ABBREVIATION.test(sentence)) continue;
      if (sentence !== '') sentences.push(sentence);
      pending = '';
    }
    if (pending.trim() !== '') sentences.push(pending.trim());
    return sentences;
  });
}
