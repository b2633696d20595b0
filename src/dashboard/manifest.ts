import { parse, validate } from 'graphql';
import { documentHash } from '../plugins/persisted-operations.ts';
import { schema } from '../schema.ts';
import * as operations from './client/operations.ts';

/** Where the dashboard's trusted-documents manifest is committed (and what TRUSTED_DOCUMENTS names). */
export const dashboardManifestFile = new URL('./trusted-documents.json', import.meta.url);

/**
 * The dashboard's trusted-documents manifest as `npm run manifest` writes it: a JSON object of
 * SHA-256 (lowercase hex) → document text for every operation in client/operations.ts, sorted by
 * hash so the file only changes when a document does. Throws naming every document the current
 * schema rejects, so a schema change that breaks the dashboard stops the command.
 */
export function dashboardManifest(): string {
  const documents = Object.entries(operations).map(([name, text]) => ({ name, text }));
  const problems = documents.flatMap(({ name, text }) =>
    validate(schema, parse(text)).map((error) => `${name}: ${error.message}`),
  );
  if (problems.length > 0) {
    throw new Error(`dashboard operations the schema rejects:\n  ${problems.join('\n  ')}`);
  }
  const entries = documents
    .map(({ text }) => [documentHash(text), text] as const)
    .sort(([a], [b]) => a.localeCompare(b));
  return `${JSON.stringify(Object.fromEntries(entries), null, 2)}\n`;
}
