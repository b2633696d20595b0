/**
 * Every operation the dashboard sends, exactly the fields its page shows. `npm run manifest`
 * hashes them into `src/dashboard/trusted-documents.json`, the manifest a server started with
 * `TRUSTED_DOCUMENTS` runs; change one here and run it again (a test fails while it is stale).
 */
export const POSTS = `query Posts($after: String) {
  posts(first: 10, after: $after) { edges { node { id title status } } pageInfo { hasNextPage endCursor } }
}`;
export const POST = `query Post($id: ID!) {
  post(id: $id) { id title status summary tags { name } latestRun { id status progress steps { name status progress } } }
}`;
export const VIEWER = 'query Viewer { viewer { name role } }';
export const START =
  'mutation Start($postId: ID!) { startPipeline(input: { postId: $postId }) { pipelineRun { id } } }';
export const WATCH = `subscription Watch($id: ID!) {
  pipelineRun(id: $id) { type progress step stepProgress runStatus error }
}`;
