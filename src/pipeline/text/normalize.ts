import { tokenize } from './tokenize.ts';

// Code spans and backslash escapes are swapped for private-use placeholders while the inline
// rewrites run, so `snake_case` or \*literal\* survive the emphasis and tag stripping verbatim.
const PLACEHOLDER_CHARS = /[\uE000\uE001]/g;
const PLACEHOLDER = /\uE000(\d+)\uE001/g;

const OPENING_FENCE = /^ {0,3}(`{3,}(?=[^`]*$)|~{3,})/;
const CLOSING_FENCE = /^ {0,3}(`{3,}|~{3,})[ \t]*$/;
const BLOCKQUOTE_MARKERS = /^ {0,3}(?:>[ \t]?)+/;
const THEMATIC_BREAK_OR_SETEXT_UNDERLINE = /^ {0,3}(?:([-*_])(?:[ \t]*\1){2,}|=+|-+)[ \t]*$/;
const ATX_HEADING = /^ {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const LIST_MARKER = /^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+(?:\[[ xX]\][ \t]+)?/;
const LINK_REFERENCE_DEFINITION = /^ {0,3}\[(?!\^)[^\]]+\]:[ \t]*\S+.*$/;

const CODE_SPAN_OR_ESCAPE = /\\([!-/:-@[-`{-~])|(?<!`)(`+)(?!`)([^\n]*?[^`\n])\2(?!`)/g;
// Like browsers, an unclosed comment or script runs to the end; this also keeps the scan linear.
const HTML_COMMENT = /<!--[\s\S]*?(?:-->|$)/g;
const SCRIPT_OR_STYLE = /<(script|style)\b[^>]*>[\s\S]*?(?:<\/\1\s*>|$)/gi;
const LINK_DESTINATION = String.raw`\(\s*(?:[^()\s]|\([^()\s]*\))*(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)`;
const IMAGE = new RegExp(String.raw`!\[[^\]]*\](?:${LINK_DESTINATION}|\[[^\]]*\])`, 'g');
const LINK = new RegExp(String.raw`\[([^\]]*)\](?:${LINK_DESTINATION}|\[[^\]]*\])`, 'g');
const AUTOLINK = /<((?:https?|ftp):\/\/[^\s<>]+|mailto:[^\s<>]+|[^\s<>@]+@[^\s<>@]+)>/gi;
const HTML_TAG = /<\/?([A-Za-z][A-Za-z0-9-]*)(?:\s[^<>]*)?\/?>/g;
// Block-level tags become line breaks so "<p>One.</p><p>Two.</p>" keeps its paragraphs apart.
const BLOCK_TAGS = new Set(
  `address article aside blockquote br dd div dl dt figcaption figure footer h1 h2 h3 h4 h5 h6
  header hr li main nav ol p pre section table td th tr ul`.split(/\s+/),
);
// A delimiter run only pairs with an identical run, so "*a **b** c*" unwraps from the outside in.
// Spans are capped at 1,000 characters: unbounded, a long line full of unmatched delimiters
// takes quadratic time (seconds for 100 kB).
const EMPHASIS = [
  /(?<!\*)(\*{1,3})(?!\*)(?=\S)(.{0,1000}?[^\s*])\1(?!\*)/g,
  // Underscores inside words are not emphasis: snake_case_name stays intact.
  /(?<![\p{L}\p{N}_])(_{1,3})(?!_)(?=\S)(.{0,1000}?[^\s_])\1(?![\p{L}\p{N}_])/gu,
  /(~~)(?=\S)(.{0,1000}?\S)\1/g,
];
const ENTITY = /&(?:#(\d{1,7})|#x([0-9a-f]{1,6})|([a-z]+));/gi;
const NAMED_ENTITIES: Readonly<Record<string, string>> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: ' ',
};

/** Markdown (with inline HTML) to plain text: paragraphs separated by one blank line. */
export function normalizeMarkdown(body: string): string {
  const plain = stripInlineSyntax(
    stripBlockSyntax(body.replace(/\r\n?/g, '\n').replace(PLACEHOLDER_CHARS, '')),
  );
  return plain
    .split('\n')
    .map((line) => line.replace(/[^\S\n]+/g, ' ').trim())
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

export function countWords(text: string): number {
  return tokenize(text).length;
}

export function readingMinutes(wordCount: number, wordsPerMinute = 200): number {
  if (!(wordsPerMinute > 0)) throw new RangeError('wordsPerMinute must be positive');
  return wordCount > 0 ? Math.ceil(wordCount / wordsPerMinute) : 0;
}

// Removed blocks (fences, rules) leave blank lines behind so their neighbours stay separate
// paragraphs; headings get blank lines around them for the same reason.
function stripBlockSyntax(text: string): string {
  const lines: string[] = [];
  let openFence: string | undefined;
  for (const rawLine of text.split('\n')) {
    const line = rawLine.replace(BLOCKQUOTE_MARKERS, '');
    if (openFence !== undefined) {
      const fence = CLOSING_FENCE.exec(line)?.[1];
      if (fence && fence[0] === openFence[0] && fence.length >= openFence.length) {
        openFence = undefined;
      }
      lines.push('');
      continue;
    }
    openFence = OPENING_FENCE.exec(line)?.[1];
    if (
      openFence !== undefined ||
      THEMATIC_BREAK_OR_SETEXT_UNDERLINE.test(line) ||
      LINK_REFERENCE_DEFINITION.test(line)
    ) {
      lines.push('');
      continue;
    }
    const heading = ATX_HEADING.exec(line);
    if (heading) {
      lines.push('', heading[1] ?? '', '');
      continue;
    }
    lines.push(line.replace(LIST_MARKER, ''));
  }
  return lines.join('\n');
}

function stripInlineSyntax(text: string): string {
  const protectedSpans: string[] = [];
  const protect = (span: string) => `\uE000${protectedSpans.push(span) - 1}\uE001`;

  let result = text
    .replace(CODE_SPAN_OR_ESCAPE, (_match, escaped?: string, _ticks?: string, code?: string) =>
      protect(escaped ?? code?.trim() ?? ''),
    )
    .replace(HTML_COMMENT, '')
    .replace(SCRIPT_OR_STYLE, '')
    .replace(IMAGE, '')
    .replace(LINK, '$1')
    .replace(AUTOLINK, '$1')
    .replace(HTML_TAG, (_match, tag: string) => (BLOCK_TAGS.has(tag.toLowerCase()) ? '\n' : ''));

  let previous: string;
  do {
    previous = result;
    for (const pattern of EMPHASIS) result = result.replace(pattern, '$2');
  } while (result !== previous);

  return decodeEntities(result).replace(
    PLACEHOLDER,
    (_match, index: string) => protectedSpans[Number(index)] ?? '',
  );
}

function decodeEntities(text: string): string {
  return text.replace(ENTITY, (match, decimal?: string, hex?: string, name?: string) => {
    if (name !== undefined) return NAMED_ENTITIES[name.toLowerCase()] ?? match;
    const codePoint = decimal !== undefined ? Number(decimal) : Number.parseInt(hex ?? '', 16);
    return codePoint > 0 && codePoint <= 0x10ffff ? String.fromCodePoint(codePoint) : match;
  });
}
