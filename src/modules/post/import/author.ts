import { slugify } from '../../../processing/text/seo.ts';

/** Who wrote an imported post: matched to a user by email, else by name, else created. */
export interface AuthorRef {
  name: string;
  /** Lowercased; for a name-only author, a stable address under `.invalid` (RFC 2606). */
  email: string;
  /** False when the email was made up from the name: match such an author by name too. */
  hasEmail: boolean;
}

const emailPattern = /^[^@\s<>]+@[^@\s<>]+$/;
// `s`: a name may span lines (its white space is collapsed below); without it, `Name\n<email>`
// was read as a name-only author, its address part of the name and a made-up email.
const namedEmailPattern = /^(.*?)\s*<([^<>]*)>$/s;

/**
 * Reads an author as blogs write one: `Ada Lovelace`, `ada@example.com` or
 * `Ada Lovelace <ada@example.com>`. Returns why it cannot be a user's name and email otherwise
 * (users need a name of 1–100 characters and an address of at most 254).
 */
export function parseAuthor(text: string): AuthorRef | string {
  const trimmed = text.trim();
  const named = namedEmailPattern.exec(trimmed);
  const email = (named ? named[2]! : emailPattern.test(trimmed) ? trimmed : '').trim();
  if (named && !emailPattern.test(email)) return `"${named[2]}" is not an email address`;
  if (email.length > 254) return 'the email address is longer than 254 characters';
  const name = (named ? named[1]!.replace(/^"|"$/g, '') : email ? email.split('@')[0]! : trimmed)
    .replace(/\s+/g, ' ')
    .trim();
  if (!name) return 'the author has no name';
  if (name.length > 100) return 'the author name is longer than 100 characters';
  if (email) return { name, email: email.toLowerCase(), hasEmail: true };
  const local = slugify(name, 60) || 'author';
  return { name, email: `${local}@authors.invalid`, hasEmail: false };
}
