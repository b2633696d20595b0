/** Preloaded in GraphiQL at /graphql; the README walks through the same operations. */
export const graphiqlExamples = `# Welcome to Quire. Run one of the operations below (▶ picks by name).

query LatestPosts {
  posts(first: 10, orderBy: { field: CREATED_AT, direction: DESC }) {
    totalCount
    edges {
      cursor
      node {
        id
        title
        status
        author { name }
        tags { name }
        comments(first: 3) { edges { node { body author { name } } } }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}

# Needs a bearer token (headers pane: {"Authorization": "Bearer qr_…"}); npm run token makes one.
mutation StartPipeline($postId: ID!) {
  startPipeline(input: { postId: $postId }) { pipelineRun { id status steps { name status } } }
}

# Every mutation takes one \`input\` object and returns a payload; failures come as errors with extensions.code.
mutation AddComment($postId: ID!) {
  addComment(input: { postId: $postId, body: "Nice write-up." }) { comment { id body author { name } } }
}

# Paste the run id from StartPipeline; events stream in as the run progresses.
subscription WatchRun($runId: ID!, $afterEventId: ID) {
  pipelineRun(id: $runId, afterEventId: $afterEventId) { id sequence type progress step stepProgress runStatus }
}

query PostWithLatestRun($id: ID!) {
  post(id: $id) { title status summary keywords seoScore tags { name } latestRun { status progress steps { name status progress } } }
}

query Search {
  searchPosts(query: "graphql", first: 5) {
    edges { node { title summary } }
  }
}
`;
