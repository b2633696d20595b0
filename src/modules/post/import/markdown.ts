import { basename, dirname, extname } from 'node:path';
import matter from 'gray-matter';
import { isTimestamp, textProblem } from '../../../db/postgres-values.ts';
import { slugify } from '../../../processing/text/seo.ts';
import type { NewPostInput } from '../post.service.ts';

/** One Markdown file as read from disk; `path` names it in every problem reported. */
export interface MarkdownFile {
  path: string;
  bytes: Buffer;
  modifiedAt: Date;
}

const MAX_TAGS = 20;
const utf8 = new TextDecoder('utf-8', { fatal: true });
// gray-matter evaluates `---js` front matter with eval: a file must never run code.
const refuse = () => {
  throw new Error('only YAML or JSON front matter is read');
};
const matterOptions = { engines: { js: refuse, javascript: refuse, coffee: refuse, cson: refuse } };
const jekyllDatePrefix = /^(\d{4}-\d{2}-\d{2})-/;
const firstHeading = /^#{1,6}[ \t]+(.+?)[ \t#]*$/m;
/** `2024-01-02`, `2024-01-02 10:30`, `2024-01-02T10:30:00.5+02:00`, Jekyll's `… +0200`. */
const looseDate =
  /^(\d{4}-\d{2}-\d{2})(?:[ Tt](\d{2}:\d{2})(:\d{2}(?:\.\d{1,9})?)?\s*(Z|z|[+-]\d{2}:?\d{2})?)?$/;
/** Eleventy's computed dates: the file's own time is the best this import knows. */
const eleventyFileDates = new Set(['created', 'last modified', 'git created', 'git last modified']);

/**
 * A post read from a Markdown file with YAML (or JSON) front matter as Hugo, Jekyll, Astro and
 * Eleventy write it: `title` (else the first heading), `date` (also `pubDate`, `publishDate`, a
 * Jekyll `YYYY-MM-DD-` file name prefix), `tags` and `categories` (normalised to tag names),
 * `draft: true` or Jekyll's `published: false`, `slug` (else the file name), `author` or the
 * first of `authors` (a name, an email, `Name <email>`, or `{ name, email }`). The body is the
 * text after the front matter. Returns the input with every problem found, in words.
 */
export function readMarkdownPost(
  file: MarkdownFile,
  defaultAuthor: string | null,
): { input: NewPostInput; problems: string[] } {
  const problems: string[] = [];
  let text: string;
  try {
    text = utf8.decode(file.bytes);
  } catch {
    return { input: { title: '', body: '' }, problems: ['is not valid UTF-8 text'] };
  }
  if (/^\+\+\+\r?\n/.test(text)) {
    problems.push('TOML front matter (+++) is not supported: convert it to YAML (---)');
    return { input: { title: '', body: '' }, problems };
  }
  let data: Record<string, unknown> = {};
  let content = text;
  let frontMatter = '';
  try {
    const parsed = matter(text, matterOptions);
    content = parsed.content;
    frontMatter = parsed.matter ?? '';
    if (parsed.data === null || typeof parsed.data !== 'object' || Array.isArray(parsed.data)) {
      problems.push('front matter: is not a mapping of keys to values');
    } else data = parsed.data;
  } catch (error) {
    problems.push(`front matter: ${String((error as Error).message).split('\n')[0]}`);
    return { input: { title: '', body: '' }, problems };
  }
  const body = content.replace(/^(?:[ \t]*\r?\n)+/, '');
  const fileName = basename(file.path, extname(file.path));
  const stem = /^_?index$/.test(fileName) ? basename(dirname(file.path)) : fileName;

  const title = scalarText(data.title) ?? firstHeading.exec(body)?.[1] ?? null;
  if (title === null) problems.push('title: missing (front matter `title` or a first heading)');

  let createdAt: string | null = null;
  const dateKey = ['date', 'pubDate', 'publishDate'].find((key) => data[key] != null);
  // YAML reads 2023-02-30 as March 2: check a date as it is written.
  const dateValue = dateKey
    ? (new RegExp(`^${dateKey}:[ \t]*['"]?([^'"\n#]*?)['"]?[ \t]*(?:#.*)?$`, 'm').exec(
        frontMatter,
      )?.[1] ?? data[dateKey])
    : undefined;
  const filenameDate = jekyllDatePrefix.exec(fileName)?.[1];
  if (dateValue !== undefined) {
    createdAt = toTimestamp(dateValue, file.modifiedAt);
    if (!createdAt) problems.push(`date: "${String(dateValue)}" is not a date`);
  } else if (filenameDate) {
    createdAt = toTimestamp(filenameDate, file.modifiedAt);
    if (!createdAt) problems.push(`date: the file name's "${filenameDate}" is not a date`);
  }

  const draft = flag(data.draft);
  const published = flag(data.published);
  if (draft === 'invalid') problems.push('draft: must be true or false');
  if (published === 'invalid') problems.push('published: must be true or false');

  const tags = tagNames([data.tags, data.categories], problems);

  let slug: string | null = null;
  const slugValue = scalarText(data.slug);
  if (data.slug !== undefined && data.slug !== null) {
    slug = slugValue === null ? null : slugify(slugValue, 120);
    if (!slug) problems.push('slug: has no letters or digits');
  } else {
    slug = slugify(stem.replace(jekyllDatePrefix, ''), 120) || null;
  }

  const authorValue = Array.isArray(data.authors) ? data.authors[0] : (data.author ?? null);
  const author = authorValue === null ? defaultAuthor : authorText(authorValue);
  if (author === null) {
    problems.push(
      authorValue === null
        ? 'author: missing (front matter `author`, or --author for files without one)'
        : 'author: must be a name, an email, `Name <email>` or { name, email }',
    );
  }

  const input: NewPostInput = {
    title: title ?? '',
    body,
    slug,
    status: draft === true || published === false ? 'DRAFT' : 'PUBLISHED',
    tags,
    author,
    createdAt,
  };
  // YAML escapes ("\0") make characters the raw file check cannot see: check what is stored.
  for (const [field, value] of Object.entries(input)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      const problem = typeof item === 'string' ? textProblem(item) : null;
      if (problem) {
        problems.push(`${field}: ${problem}`);
        break;
      }
    }
  }
  return { input, problems };
}

function scalarText(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return null;
}

function flag(value: unknown): boolean | null | 'invalid' {
  if (value === undefined || value === null) return null;
  if (typeof value === 'boolean') return value;
  if (value === 'true' || value === 'false') return value === 'true';
  return 'invalid';
}

function toTimestamp(value: unknown, modifiedAt: Date): string | null {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (typeof value !== 'string') return null;
  if (eleventyFileDates.has(value.trim().toLowerCase())) return modifiedAt.toISOString();
  const match = looseDate.exec(value.trim());
  if (!match) return null;
  const [, day, minutes, seconds, zone] = match;
  const offset = !zone || /^z$/i.test(zone) ? 'Z' : zone.replace(/^([+-]\d{2}):?(\d{2})$/, '$1:$2');
  const iso = `${day}T${minutes ?? '00:00'}${seconds ?? ':00'}${offset}`;
  return isTimestamp(iso) ? new Date(iso).toISOString() : null;
}

function tagNames(values: unknown[], problems: string[]): string[] {
  const names = new Set<string>();
  for (const value of values) {
    if (value === undefined || value === null) continue;
    const items =
      typeof value === 'string' ? value.split(value.includes(',') ? ',' : /\s+/) : value;
    if (!Array.isArray(items)) {
      problems.push('tags: must be a list or a string of names');
      continue;
    }
    for (const item of items) {
      const text = scalarText(item);
      if (text === null) problems.push(`tags: "${JSON.stringify(item)}" is not a name`);
      const name = text === null ? '' : slugify(text, 50);
      if (name) names.add(name);
    }
  }
  if (names.size > MAX_TAGS) problems.push(`tags: ${names.size} tags, at most ${MAX_TAGS}`);
  return [...names];
}

function authorText(value: unknown): string | null {
  const text = scalarText(value);
  if (text !== null) return text;
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const { name, email } = value as { name?: unknown; email?: unknown };
    const nameText = scalarText(name);
    const emailText = scalarText(email);
    if (nameText && emailText) return `${nameText} <${emailText}>`;
    return nameText ?? emailText;
  }
  return null;
}
