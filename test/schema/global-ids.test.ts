import { describe, expect, it } from 'vitest';
import { decodeGlobalId, encodeGlobalId } from '../../src/builder.ts';

describe('global IDs', () => {
  it('are base64url of `Type:id` without padding, as Buffer encodes it, and decode back', () => {
    const typenames = ['Post', 'User', 'Tag', 'Comment', 'PipelineRun', 'ApiToken'];
    // Every padding length.
    const ids = ['1', '12', '123', '9223372036854775807'];
    for (let id = 1; id < 5000; id += 7) ids.push(String(id * 104729));
    for (const typename of typenames) {
      for (const id of ids) {
        const encoded = encodeGlobalId(typename, id);
        expect(encoded).toBe(Buffer.from(`${typename}:${id}`).toString('base64url'));
        expect(decodeGlobalId(encoded)).toEqual({ typename, id });
      }
    }
    // Type names and decimal ids never encode to the characters base64 and base64url differ in;
    // other ASCII text does, and encodes as Buffer encodes it too.
    for (const text of ['?', '~~', '>?~', 'a?b>c~d']) {
      expect(encodeGlobalId('T', text)).toBe(Buffer.from(`T:${text}`).toString('base64url'));
    }
    expect(encodeGlobalId('T', '>?~')).toMatch(/[-_]/);
  });
});
