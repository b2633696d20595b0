import { buildSchema, parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { requestedOperation } from '../../src/plugins/executed-fields.ts';

// The argument checks, the query limits and the mutation rate limit each ask for the request's
// coerced variables: importPosts' 5,000 input objects are coerced once per request, not per guard.
describe('requestedOperation', () => {
  const schema = buildSchema(`
    input Item { title: String! n: Int = 3 }
    type Query { items(list: [Item!]!): Int, other(list: [Item!]): Int }
  `);
  const text = 'query Q($list: [Item!]!) { items(list: $list) } query R { other(list: []) }';
  const document = parse(text);

  it('coerces a request’s variables once for the same document and operation', () => {
    const variables = { list: [{ title: 'a' }, { title: 'b', n: 1 }] };
    const first = requestedOperation(schema, document, 'Q', variables);
    expect(first?.variables).toEqual({
      list: [
        { title: 'a', n: 3 },
        { title: 'b', n: 1 },
      ],
    });
    expect(requestedOperation(schema, document, 'Q', variables)).toBe(first);
    // Another request (a new variables object), document or operation is coerced on its own.
    const again = requestedOperation(schema, document, 'Q', { ...variables });
    expect(again).not.toBe(first);
    expect(again).toEqual(first);
    expect(requestedOperation(schema, parse(text), 'Q', variables)).not.toBe(first);
    expect(requestedOperation(schema, document, 'R', variables)?.operation.name?.value).toBe('R');
  });

  it('answers undefined for variables that do not coerce, each time', () => {
    const variables = { list: [{ n: 1 }] };
    expect(requestedOperation(schema, document, 'Q', variables)).toBeUndefined();
    expect(requestedOperation(schema, document, 'Q', variables)).toBeUndefined();
    expect(requestedOperation(schema, document, 'Missing', variables)).toBeUndefined();
  });
});
