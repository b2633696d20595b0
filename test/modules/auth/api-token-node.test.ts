import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.ts';
import { createPosts, createUser, globalId, type TestUser } from '../../helpers/factories.ts';
import { redisUrl } from '../../helpers/services.ts';

/** ApiToken is a Node: refetchable by its global id, by its owner and admins only. */

let instanceA: TestApp;
let instanceB: TestApp;
let owner: TestUser;
let other: TestUser;
let admin: TestUser;

const createToken = `mutation($name: String!) {
  createApiToken(input: { name: $name }) { token apiToken { id name revokedAt } }
}`;
const readNode = `query($id: ID!) { node(id: $id) { __typename id ... on ApiToken { name revokedAt } } }`;
const revoke = `mutation($id: ID!) { revokeApiToken(input: { id: $id }) { apiToken { id revokedAt } } }`;
const responseHits = (result: { extensions?: Record<string, any> }): number =>
  result.extensions!.cache.response?.hits ?? 0;

beforeAll(async () => {
  const env = { REDIS_URL: redisUrl, RATE_LIMIT_MUTATIONS: '1000' };
  instanceA = await startTestApp(env);
  instanceB = await startTestApp(env, instanceA);
  owner = await createUser(instanceA.deps.db, 'AUTHOR');
  other = await createUser(instanceA.deps.db, 'EDITOR');
  admin = await createUser(instanceA.deps.db, 'ADMIN');
});

afterAll(async () => {
  await instanceB?.close();
  await instanceA?.close();
});

async function newToken(name: string): Promise<string> {
  const created = await instanceA.gql(createToken, { name }, { token: owner.token });
  expect(created.errors).toBeUndefined();
  return created.data!.createApiToken.apiToken.id;
}

describe('ApiToken as a Node', () => {
  it('has a global id that node(id:) resolves for its owner and admins, and for nobody else', async () => {
    const id = await newToken('laptop');
    expect(Buffer.from(id, 'base64url').toString()).toMatch(/^ApiToken:\d+$/);
    const expected = { __typename: 'ApiToken', id, name: 'laptop', revokedAt: null };
    for (const viewer of [owner, admin]) {
      const answer = await instanceA.gql(readNode, { id }, { token: viewer.token });
      expect(answer).toEqual({ data: { node: expected } });
    }
    // Hidden exactly like an id that names nothing: null, no error.
    for (const token of [other.token, undefined]) {
      for (const probe of [id, globalId('ApiToken', '987654321')]) {
        expect(await instanceA.gql(readNode, { id: probe }, { token })).toEqual({
          data: { node: null },
        });
      }
    }
  });

  it('nodes(ids:) mixes tokens with other types, hiding the tokens the viewer may not see', async () => {
    const id = await newToken('ci');
    const [post] = await createPosts(instanceA.deps.db, [{ authorId: owner.id }]);
    const postId = globalId('Post', post!.id);
    const query = `query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }`;
    const asOwner = await instanceA.gql(query, { ids: [id, postId] }, { token: owner.token });
    expect(asOwner.data!.nodes).toEqual([
      { __typename: 'ApiToken', id },
      { __typename: 'Post', id: postId },
    ]);
    const asOther = await instanceA.gql(query, { ids: [id, postId] }, { token: other.token });
    expect(asOther.data!.nodes).toEqual([null, { __typename: 'Post', id: postId }]);
  });

  it('the id from User.apiTokens revokes the token, and another instance shows it at once', async () => {
    await newToken('phone');
    const list = await instanceA.gql(
      '{ viewer { apiTokens { id name } } }',
      {},
      { token: owner.token },
    );
    const phone = list.data!.viewer.apiTokens.find(
      (token: { name: string }) => token.name === 'phone',
    );
    // Token fields are never served from the response cache; a bare node reference may be.
    await instanceA.gql(readNode, { id: phone.id }, { token: owner.token });
    const read = await instanceA.gql(
      readNode,
      { id: phone.id },
      { token: owner.token, debug: true },
    );
    expect(read.extensions!.cache.response).toBeUndefined();
    const bare = `query($id: ID!) { node(id: $id) { __typename id } }`;
    await instanceA.gql(bare, { id: phone.id }, { token: owner.token });
    const cachedBare = await instanceA.gql(
      bare,
      { id: phone.id },
      { token: owner.token, debug: true },
    );
    expect(responseHits(cachedBare)).toBe(1);
    expect(cachedBare.data!.node).toEqual({ __typename: 'ApiToken', id: phone.id });

    const revoked = await instanceB.gql(revoke, { id: phone.id }, { token: owner.token });
    expect(revoked.errors).toBeUndefined();
    expect(revoked.data!.revokeApiToken.apiToken).toEqual({
      id: phone.id,
      revokedAt: expect.stringMatching(/Z$/),
    });
    const after = await instanceA.gql(readNode, { id: phone.id }, { token: owner.token });
    expect(after.data!.node.revokedAt).toBe(revoked.data!.revokeApiToken.apiToken.revokedAt);

    const again = await instanceA.gql(revoke, { id: phone.id }, { token: owner.token });
    expect(again.errors?.map((error) => error.extensions?.code)).toEqual(['CONFLICT']);
  });

  it('revokeApiToken answers another user’s token as NOT_FOUND, and an admin may revoke it', async () => {
    const id = await newToken('shared');
    const refused = await instanceA.gql(revoke, { id }, { token: other.token });
    expect(refused).toMatchObject({ data: null });
    expect(refused.errors?.map((error) => error.extensions?.code)).toEqual(['NOT_FOUND']);
    const byAdmin = await instanceA.gql(revoke, { id }, { token: admin.token });
    expect(byAdmin.data!.revokeApiToken.apiToken.id).toBe(id);
  });
});
