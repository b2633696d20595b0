import { afterAll, beforeAll, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { createPosts, createUser, globalId, type TestUser } from '../helpers/factories.ts';

let app: TestApp;
let admin: TestUser;
let post: { id: string };
beforeAll(async () => {
  app = await startTestApp();
  admin = await createUser(app.deps.db, 'ADMIN');
  [post] = await createPosts(app.deps.db, [{ authorId: admin.id }]);
});
afterAll(() => app?.close());

async function raw(path: string, init?: RequestInit) {
  const r = await app.yoga.fetch(`http://quire.test${path}`, init);
  return `${r.status} ${(await r.text()).slice(0, 400)}`;
}
it('probe', async () => {
  const show = (x: unknown) => console.log(JSON.stringify(x).slice(0, 500));
  const tok = { token: admin.token };
  show(await app.gql('mutation($t:String!){createPost(input:{title:$t, body:"x"}){id}}', { t: 'a\u0000b' }, tok));
  show(await app.gql('{post(id:"' + globalId('Post', '9223372036854775808') + '"){id}}', {}, tok));
  show(await app.gql('{node(id:"' + globalId('Nope', '1') + '"){id}}', {}, tok));
  show(await app.gql('{__typename node(id:"garbage"){id}}', {}, tok));
  show(await app.gql('{nodes(ids:["garbage","' + globalId('Post', post.id) + '"]){id}}', {}, tok));
  show(await app.gql('{post(slug:"a\\u0000b"){id}}', {}, tok));
  show(await app.gql('{post(slug:"\\ud800"){id}}', {}, tok));
  show(await app.gql('query($s:String){posts(filter:{tag:$s}){edges{node{id}}}}', { s: '\ud800x' }, tok));
  const c = await app.gql('{posts(first:1){edges{cursor}}}', {}, tok);
  const cursor = c.data!.posts.edges[0].cursor;
  const parts = JSON.parse(Buffer.from(cursor, 'base64url').toString());
  show(parts);
  parts[3] = '9999999999999999999';
  show(await app.gql('query($a:String){posts(after:$a){edges{node{id}}}}', { a: Buffer.from(JSON.stringify(parts)).toString('base64url') }, tok));
  console.log(await raw('/graphql?query={__typename}&extensions=notjson'));
  console.log(await raw('/graphql?query={__typename}&variables={bad'));
});
