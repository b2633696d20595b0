/**
 * The six everyday shapes of issue 12 as Quire and PostGraphile v4 each spell them: the same rows
 * (published posts, newest first, ties by id) and the same fields. Kept apart from the scenario
 * (no harness import) so the statement-count tests run Quire's text as the bench sends it.
 */

/** The rows a shape asks about: raw database ids (PostGraphile) and Quire's global IDs. */
export interface ShapeSubjects {
  userId: string;
  userGlobalId: string;
  postId: string;
  postGlobalId: string;
  tagName: string;
  tagId: string;
}

/** A shape: its name in the table and its query text per schema. */
export interface Shape {
  name: string;
  quire: string;
  postgraphile: string;
}

/** Everything PostGraphile lists here in Quire's order: newest first, ties by id, published only. */
const published = 'orderBy: [CREATED_AT_DESC, ID_DESC], condition: { status: "PUBLISHED" }';

/** The read shapes, their texts built for one set of subjects. */
export function readShapes(subjects: ShapeSubjects): Shape[] {
  return [
    {
      name: '(1) user profile: 10 posts with comment counts',
      quire: `{ node(id: "${subjects.userGlobalId}") { ... on User { name posts(first: 10) { edges { node { id title comments { totalCount } } } } } } }`,
      postgraphile: `{ userById(id: "${subjects.userId}") { name postsByAuthorId(first: 10, ${published}) { nodes { id title commentsByPostId { totalCount } } } } }`,
    },
    {
      name: '(2) post page: 20 comments with their authors',
      quire: `{ post(id: "${subjects.postGlobalId}") { title body createdAt author { name } comments(first: 20) { edges { node { body createdAt author { name } } } } } }`,
      postgraphile: `{ postById(id: "${subjects.postId}") { title body createdAt userByAuthorId { name } commentsByPostId(first: 20, orderBy: [CREATED_AT_DESC, ID_DESC]) { nodes { body createdAt userByAuthorId { name } } } } }`,
    },
    {
      name: '(3) tag page: 20 newest posts of a tag with authors',
      quire: `{ posts(first: 20, filter: { tag: "${subjects.tagName}" }) { edges { node { id title createdAt author { name } } } } }`,
      // v4 filters a connection by its own columns only: the tag's published posts come from a
      // computed column (postgraphileTagPosts), the way PostGraphile's docs add such a field.
      postgraphile: `{ tagById(id: "${subjects.tagId}") { publishedPosts(first: 20) { nodes { id title createdAt userByAuthorId { name } } } } }`,
    },
    {
      name: '(4) ten-item list: id and title',
      quire: '{ posts(first: 10) { edges { node { id title } } } }',
      postgraphile: `{ allPosts(first: 10, ${published}) { nodes { id title } } }`,
    },
    {
      name: '(5) home feed: 20 posts with summary, author, tags, comment count',
      quire:
        '{ posts(first: 20) { edges { node { id title summary createdAt author { name } tags { name } comments { totalCount } } } } }',
      postgraphile: `{ allPosts(first: 20, ${published}) { nodes { id title summary createdAt userByAuthorId { name } postTagsByPostId { nodes { tagByTagId { name } } } commentsByPostId { totalCount } } } }`,
    },
  ];
}

/** Name of the write shape in the table. */
export const createPostShape = '(6) createPost';

/**
 * Quire's createPost of a one-word post as the bearer token's author (the bench's (e) and (6)).
 * One document, the title in `$title`: frontends send variables, so every server parses, validates
 * and compiles the document once rather than once per request.
 */
export const quireCreatePostMutation =
  'mutation($title: String!) { createPost(input: { title: $title, body: "x" }) { post { id } } }';

/** One GraphQL request: a fixed document and this request's variables. */
export interface GraphQlRequest {
  query: string;
  variables: Record<string, unknown>;
}

/** Quire's createPost of a one-word post as the bearer token's author, numbered by `sequence`. */
export const quireCreatePost = (sequence: number): GraphQlRequest => ({
  query: quireCreatePostMutation,
  variables: { title: `Bench post ${process.pid} ${sequence}` },
});

const postgraphileCreatePostMutation =
  'mutation($post: PostInput!) { createPost(input: { post: $post }) { post { id } } }';

/** PostGraphile's generated createPost of the same post (it takes the author and slug as columns). */
export const postgraphileCreatePost =
  (authorId: string) =>
  (sequence: number): GraphQlRequest => ({
    query: postgraphileCreatePostMutation,
    variables: {
      post: {
        authorId,
        title: `Bench post ${process.pid} ${sequence}`,
        slug: `bench-postgraphile-${process.pid}-${sequence}`,
        body: 'x',
      },
    },
  });

/**
 * The tag page's field for PostGraphile (`Tag.publishedPosts`): the tag's published posts newest
 * first through post_tags_tag_created_idx, as Quire walks them. An inlinable SQL function, so the
 * planner pushes PostGraphile's LIMIT into it. Created in the bench database before PostGraphile
 * introspects it; Quire never reads it.
 */
export const postgraphileTagPosts = `
  create or replace function tags_published_posts(t tags) returns setof posts
  language sql stable as $$
    select p.* from post_tags pt join posts p on p.id = pt.post_id
    where pt.tag_id = t.id and p.status = 'PUBLISHED'
    order by pt.post_created_at desc, pt.post_id desc
  $$`;
