import { expect } from 'vitest';
import type { GraphQLResponse, TestApp } from './app.ts';

const readPost = `query($id: ID!) { post(id: $id) { title author { name } } }`;
const updatePost = `mutation($input: UpdatePostInput!) { updatePost(input: $input) { post { title } } }`;

/**
 * Reads a post through `reader` (warming its cache), renames it through `writer`, reads again,
 * `rounds` times; every read must show the latest title. Returns both reads of every round
 * (with debug extensions) so a test can assert what its cache did.
 */
export async function interleaveWritesAndReads(
  reader: TestApp,
  writer: TestApp,
  postId: string,
  token: string,
  rounds = 200,
): Promise<{ warm: GraphQLResponse[]; afterWrite: GraphQLResponse[] }> {
  const warm: GraphQLResponse[] = [];
  const afterWrite: GraphQLResponse[] = [];
  for (let version = 1; version <= rounds; version += 1) {
    const before = await reader.gql(readPost, { id: postId }, { debug: true });
    expect(before.data!.post.title).toBe(`v${version - 1}`);
    warm.push(before);
    const written = await writer.gql(
      updatePost,
      { input: { id: postId, title: `v${version}` } },
      { token },
    );
    expect(written.errors).toBeUndefined();
    const after = await reader.gql(readPost, { id: postId }, { debug: true });
    expect(after.data!.post.title).toBe(`v${version}`);
    afterWrite.push(after);
  }
  return { warm, afterWrite };
}
