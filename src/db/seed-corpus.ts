import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAuthor } from '../modules/post/import/author.ts';
import type { MarkdownFile } from '../modules/post/import/markdown.ts';
import { slugify } from '../processing/text/seo.ts';
import { textProblem } from './postgres-values.ts';

/**
 * Real text for demo and benchmark data: the README.md files of the installed packages, written
 * by people about real software, and present on every machine that ran `npm ci`.
 */

/** Licenses that allow copying the text into a demo database (package.json `license`). */
const PERMISSIVE = new Set([
  'MIT',
  'ISC',
  'APACHE-2.0',
  'BSD-2-CLAUSE',
  'BSD-3-CLAUSE',
  '0BSD',
  'BLUEOAK-1.0.0',
  'UNLICENSE',
]);
const MIN_CHARS = 1_500;
const MAX_CHARS = 100_000;
const MAX_TAGS = 20;
/** Dates are spread over this year, so every machine gets the same data. */
const YEAR_START = Date.UTC(2025, 0, 1);
const YEAR_MS = 365 * 24 * 3600 * 1000;

export const nodeModules = fileURLToPath(new URL('../../node_modules', import.meta.url));

export interface CorpusDocument {
  /** Where the text came from, e.g. `node_modules/pg/README.md`. */
  path: string;
  package: string;
  license: string;
  title: string;
  author: string;
  tags: string[];
  slug: string;
  createdAt: string;
  body: string;
}

/**
 * Every installed package's README that is permissively licensed and between 1,500 and 100,000
 * characters, sorted by package name: title from its first heading (else the package name),
 * author from package.json `author` (else the first maintainer or contributor, else "The <name>
 * authors"), tags from `keywords`, creation dates spread evenly over 2025.
 */
export async function loadReadmeCorpus(root = nodeModules): Promise<CorpusDocument[]> {
  const found: Omit<CorpusDocument, 'createdAt'>[] = [];
  const slugs = new Set<string>();
  for (const dir of await packageDirs(root)) {
    const document = await readPackage(dir);
    if (!document || slugs.has(document.slug)) continue;
    slugs.add(document.slug);
    found.push(document);
  }
  found.sort((a, b) => (a.package < b.package ? -1 : 1));
  return found.map((document, index) => ({
    ...document,
    createdAt: new Date(
      YEAR_START +
        Math.floor((index * YEAR_MS) / found.length) +
        (hash(document.package) % 720) * 60_000,
    ).toISOString(),
  }));
}

/** A corpus document as a Markdown file with front matter: what `npm run import` reads. */
export function toMarkdownFile(document: CorpusDocument): MarkdownFile {
  // JSON strings are YAML double-quoted scalars.
  const frontMatter = [
    `title: ${JSON.stringify(document.title)}`,
    `author: ${JSON.stringify(document.author)}`,
    `date: ${JSON.stringify(document.createdAt)}`,
    `slug: ${JSON.stringify(document.slug)}`,
    `tags: ${JSON.stringify(document.tags)}`,
  ].join('\n');
  return {
    path: document.path,
    bytes: Buffer.from(`---\n${frontMatter}\n---\n${document.body}`),
    modifiedAt: new Date(document.createdAt),
  };
}

/**
 * Prose paragraphs of the corpus (no code, tables, lists, headings or HTML), each once, in corpus
 * order: what generated benchmark posts are made of.
 */
export function corpusParagraphs(documents: readonly CorpusDocument[]): string[] {
  const seen = new Set<string>();
  for (const document of documents) {
    const withoutCode = document.body.replace(/^(```|~~~)[\s\S]*?^\1[^\n]*$/gm, '');
    for (const block of withoutCode.split(/\n[ \t]*\n/)) {
      const text = block.trim().replace(/\s*\n\s*/g, ' ');
      if (isProse(text)) seen.add(text);
    }
  }
  return [...seen];
}

/** Headings of the corpus fit for titles (8–100 characters, mostly letters), each once. */
export function corpusHeadings(documents: readonly CorpusDocument[]): string[] {
  const seen = new Set<string>();
  for (const document of documents) {
    for (const match of document.body.matchAll(/^#{1,3}[ \t]+(.+?)[ \t#]*$/gm)) {
      const heading = cleanInline(match[1]!);
      if (
        heading.length >= 8 &&
        heading.length <= 100 &&
        /^[\p{L}\p{N}\s,.'’:&()-]+$/u.test(heading)
      ) {
        seen.add(heading);
      }
    }
  }
  return [...seen];
}

function isProse(text: string): boolean {
  if (text.length < 120 || text.length > 1_200) return false;
  if (/^([#>|<!\-*+`~[]|\d+[.)]\s)/.test(text) || /\|\s*-{3}/.test(text)) return false;
  const words = text.split(/\s+/);
  const plain = words.filter((word) => /^[\p{L}'’,.;:!?()-]+$/u.test(word)).length;
  return words.length >= 20 && plain / words.length >= 0.8;
}

async function packageDirs(root: string): Promise<string[]> {
  const dirs: string[] = [];
  for (const entry of await readdir(root, { withFileTypes: true }).catch(() => [])) {
    if (entry.name.startsWith('.')) continue;
    const path = join(root, entry.name);
    if (!entry.name.startsWith('@')) dirs.push(path);
    else for (const scoped of await readdir(path).catch(() => [])) dirs.push(join(path, scoped));
  }
  return dirs;
}

interface PackageJson {
  name?: unknown;
  license?: unknown;
  licenses?: unknown;
  author?: unknown;
  maintainers?: unknown;
  contributors?: unknown;
  keywords?: unknown;
}

async function readPackage(dir: string): Promise<Omit<CorpusDocument, 'createdAt'> | null> {
  const manifest = await readFile(join(dir, 'package.json'), 'utf8')
    .then((text) => JSON.parse(text) as PackageJson)
    .catch(() => null);
  if (!manifest || typeof manifest.name !== 'string') return null;
  const license = licenseOf(manifest);
  if (!license || !isPermissive(license)) return null;
  const readme = (await readdir(dir).catch(() => [])).find((name) =>
    /^readme\.(md|markdown)$/i.test(name),
  );
  if (!readme) return null;
  const body = await readFile(join(dir, readme), 'utf8').catch(() => '');
  if (body.length < MIN_CHARS || body.length > MAX_CHARS || textProblem(body)) return null;
  const name = manifest.name;
  return {
    path: `node_modules/${name}/${readme}`,
    package: name,
    license,
    title: titleOf(body, name),
    author: authorOf(manifest, name),
    tags: tagsOf(manifest.keywords),
    slug: slugify(name, 120),
    body,
  };
}

function licenseOf(manifest: PackageJson): string | null {
  const value =
    manifest.license ?? (Array.isArray(manifest.licenses) ? manifest.licenses[0] : null);
  if (typeof value === 'string') return value;
  if (
    value &&
    typeof value === 'object' &&
    typeof (value as { type?: unknown }).type === 'string'
  ) {
    return (value as { type: string }).type;
  }
  return null;
}

/** An SPDX expression permits use when every AND part, or any OR alternative, is permissive. */
function isPermissive(expression: string): boolean {
  const text = expression.replace(/[()]/g, '').trim().toUpperCase();
  if (/\sOR\s/.test(text)) return text.split(/\s+OR\s+/).some(isPermissive);
  return text.split(/\s+AND\s+/).every((part) => PERMISSIVE.has(part.trim()));
}

function titleOf(body: string, name: string): string {
  const heading =
    /^#{1,6}[ \t]+(.+?)[ \t#]*$/m.exec(body)?.[1] ??
    /^([^\n]+)\n(?:=+|-+)[ \t]*$/m.exec(body)?.[1] ??
    /<h1[^>]*>([\s\S]*?)<\/h1>/i.exec(body)?.[1] ??
    '';
  const title = cleanInline(heading);
  return /[\p{L}\p{N}]/u.test(title) ? title.slice(0, 200) : name;
}

/** Markdown and HTML inline markup reduced to its text: images, link targets, tags, `*`, code. */
function cleanInline(text: string): string {
  return text
    .replace(/!\[[^\]]*\]\([^)]*\)/g, '')
    .replace(/!\[[^\]]*\]\[[^\]]*\]/g, '')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/\[([^\]]*)\]\[[^\]]*\]/g, '$1')
    .replace(/<[^>]+>/g, '')
    .replace(/[`*]/g, '')
    .replace(/\s+/g, ' ')
    .trim();
}

function authorOf(manifest: PackageJson, name: string): string {
  const candidates = [
    manifest.author,
    ...(Array.isArray(manifest.maintainers) ? manifest.maintainers : []),
    ...(Array.isArray(manifest.contributors) ? manifest.contributors : []),
  ];
  for (const candidate of candidates) {
    const text = personText(candidate);
    if (text && typeof parseAuthor(text) !== 'string') return text;
  }
  return `The ${name} authors`;
}

/** `Name <email> (url)` or `{ name, email, url }` as `Name <email>`. */
function personText(value: unknown): string | null {
  if (typeof value === 'string') return value.replace(/\s*\([^)]*\)\s*$/, '').trim() || null;
  if (!value || typeof value !== 'object') return null;
  const { name, email } = value as { name?: unknown; email?: unknown };
  if (typeof name === 'string' && typeof email === 'string') return `${name} <${email}>`;
  return typeof name === 'string' ? name : typeof email === 'string' ? email : null;
}

function tagsOf(keywords: unknown): string[] {
  if (!Array.isArray(keywords)) return [];
  const names = keywords.flatMap((word) => (typeof word === 'string' ? [slugify(word, 50)] : []));
  return [...new Set(names.filter(Boolean))].slice(0, MAX_TAGS);
}

/** FNV-1a: a stable spread of times within a day, the same on every machine. */
function hash(text: string): number {
  let value = 0x811c9dc5;
  for (const char of text) value = Math.imul(value ^ char.charCodeAt(0), 0x01000193) >>> 0;
  return value;
}
