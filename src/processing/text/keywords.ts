import { contentTerms, countTerms } from './tokenize.ts';

export interface Keyword {
  term: string;
  score: number;
}

/**
 * TF-IDF keywords of `document` against `corpus`. The idf is smoothed (+1 in numerator and
 * denominator, +1 overall) so terms absent from the corpus, or an empty corpus, still score.
 */
export function extractKeywords(document: string, corpus: readonly string[], limit = 8): Keyword[] {
  if (!Number.isInteger(limit) || limit < 0) {
    throw new RangeError('limit must be a non-negative integer');
  }
  const terms = contentTerms(document);
  const termCounts = countTerms(terms);

  const documentFrequency = new Map<string, number>();
  for (const other of corpus) {
    for (const term of new Set(contentTerms(other))) {
      if (termCounts.has(term)) documentFrequency.set(term, (documentFrequency.get(term) ?? 0) + 1);
    }
  }

  const keywords = Array.from(termCounts, ([term, count]) => {
    const idf = Math.log((1 + corpus.length) / (1 + (documentFrequency.get(term) ?? 0))) + 1;
    return { term, score: Math.round((count / terms.length) * idf * 10_000) / 10_000 };
  });
  // Code-unit order rather than localeCompare: the result must not depend on the host's ICU locale.
  keywords.sort((a, b) => b.score - a.score || (a.term < b.term ? -1 : a.term > b.term ? 1 : 0));
  return keywords.slice(0, limit);
}
