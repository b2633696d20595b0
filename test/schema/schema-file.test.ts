import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { printedSchema } from '../../src/schema.ts';

describe('schema.graphql', () => {
  it('matches the schema printed from the code (run `npm run schema:print`)', () => {
    const committed = readFileSync(new URL('../../schema.graphql', import.meta.url), 'utf8');
    expect(committed).toBe(printedSchema);
  });
});
