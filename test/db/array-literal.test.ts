import { describe, expect, it } from 'vitest';
import { arrayLiteral } from '../../src/db/postgres-values.ts';
import { withAdminClient } from '../helpers/services.ts';

// The import sends its columns as array literals it builds itself (src/modules/post/import):
// Postgres must read back exactly the strings and nulls that went in.
describe('arrayLiteral', () => {
  it('reads back in Postgres as the same strings and nulls, whatever they hold', async () => {
    const texts = [
      'plain',
      '',
      'NULL',
      'null',
      'with "quotes"',
      'back\\slash\\',
      '\\"',
      '{braces}, commas; and more}',
      '  spaced  ',
      'tab\tnew\nline\r',
      'ünïcødé 💡 文字',
      null,
    ];
    const ids = ['1', null, '9223372036854775807'];
    const times = ['2020-05-04T03:02:01Z', '2026-12-02 00:00:00.123456+00'];
    const { rows } = await withAdminClient((client) =>
      client.query<{ texts: string[]; ids: string[]; same: boolean }>(
        `select $1::text[] as texts, $2::bigint[]::text[] as ids,
          $3::timestamptz[] = array['2020-05-04T03:02:01Z', '2026-12-02 00:00:00.123456+00']::timestamptz[] as same`,
        [arrayLiteral(texts), arrayLiteral(ids), arrayLiteral(times)],
      ),
    );
    expect(rows[0]!.texts).toEqual(texts);
    expect(rows[0]!.ids).toEqual(ids);
    expect(rows[0]!.same).toBe(true);
    expect(arrayLiteral([])).toBe('{}');
  });
});
