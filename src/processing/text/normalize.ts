import { fromMarkdown } from 'mdast-util-from-markdown';
import { gfmFromMarkdown } from 'mdast-util-gfm';
import { gfm } from 'micromark-extension-gfm';
import { tokenize } from './tokenize.ts';

/**
 * The parts of an mdast node the walk reads. Structural, so the walk needs no import from the
 * `mdast` type package (not a direct dependency); every mdast node satisfies it.
 */
interface MarkdownNode {
  type: string;
  value?: string;
  alt?: string | null;
  children?: readonly MarkdownNode[];
}

// Nodes whose content is not prose: code is not read as sentences, raw HTML is markup (block
// HTML such as `<p>…</p>` is dropped whole), footnote references are bare markers ("[^1]"),
// definitions are link targets, YAML never reaches here (front matter is not parsed as Markdown).
const SKIPPED = new Set(['code', 'html', 'footnoteReference', 'definition', 'thematicBreak']);
// Blocks whose inline content is one paragraph of output. A table row is one paragraph with its
// cells as words separated by spaces, so "| --- |" rows and pipes never become text.
const TEXT_BLOCKS = new Set(['paragraph', 'heading', 'tableRow']);

/**
 * CommonMark + GFM Markdown to plain text: the prose of headings, paragraphs, list items, block
 * quotes, table rows and footnote definitions, one paragraph per block, separated by one blank
 * line, whitespace inside a paragraph collapsed to single spaces. Images contribute their alt
 * text, links their text, inline code its content verbatim (it is part of the sentence: "run
 * `npm test` first"); code blocks, raw HTML and footnote markers contribute nothing.
 */
export function normalizeMarkdown(body: string): string {
  const tree: MarkdownNode = fromMarkdown(body, {
    extensions: [gfm()],
    mdastExtensions: [gfmFromMarkdown()],
  });
  const paragraphs: string[] = [];
  collectBlocks(tree, paragraphs);
  return paragraphs.join('\n\n');
}

export function countWords(text: string): number {
  return tokenize(text).length;
}

export function readingMinutes(wordCount: number, wordsPerMinute = 200): number {
  if (!(wordsPerMinute > 0)) throw new RangeError('wordsPerMinute must be positive');
  return wordCount > 0 ? Math.ceil(wordCount / wordsPerMinute) : 0;
}

function collectBlocks(node: MarkdownNode, paragraphs: string[]): void {
  if (SKIPPED.has(node.type)) return;
  if (TEXT_BLOCKS.has(node.type)) {
    const text = inlineText(node).replace(/\s+/g, ' ').trim();
    if (text !== '') paragraphs.push(text);
    return;
  }
  for (const child of node.children ?? []) collectBlocks(child, paragraphs);
}

function inlineText(node: MarkdownNode): string {
  if (SKIPPED.has(node.type)) return '';
  if (node.type === 'image' || node.type === 'imageReference') return node.alt ?? '';
  if (node.type === 'break') return ' ';
  // Table cells are separated by a space so adjacent cells never merge into one word.
  if (node.type === 'tableCell') return ` ${(node.children ?? []).map(inlineText).join('')} `;
  if (node.value !== undefined) return node.value;
  return (node.children ?? []).map(inlineText).join('');
}
