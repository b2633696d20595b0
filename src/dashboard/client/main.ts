/// <reference lib="dom" />
import { GraphQLRequestError, request, subscribe, token } from './graphql.ts';
import { POST, POSTS, START, VIEWER, WATCH } from './operations.ts';

interface PostSummary {
  id: string;
  title: string;
  status: string;
}

interface Step {
  name: string;
  status: string;
  progress: number;
}

interface PostDetail extends PostSummary {
  summary: string | null;
  tags: { name: string }[];
  latestRun: { id: string; status: string; progress: number; steps: Step[] } | null;
}

interface RunEvent {
  type: string;
  progress: number;
  step: string | null;
  stepProgress: number | null;
  runStatus: string;
  error: string | null;
}

const ACTIVE_RUN = new Set(['QUEUED', 'RUNNING']);

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
let nextCursor: string | null = null;
let selected: string | null = null;
/** The subscription feeding the detail panel; aborted when another post is shown. */
let watching: AbortController | null = null;

function setProgress(percent: number) {
  $('progress').setAttribute('aria-valuenow', String(percent));
  $('progress-fill').style.width = `${percent}%`;
  $('progress-label').textContent = `${percent}%`;
}

function renderSteps(steps: Step[]) {
  $('steps').replaceChildren(
    ...steps.map((step) => {
      const item = document.createElement('li');
      item.className = step.status;
      item.dataset.step = step.name;
      item.textContent = `${step.name} — ${step.status.toLowerCase()} (${step.progress}%)`;
      return item;
    }),
  );
}

function renderDetail(post: PostDetail) {
  $('detail').hidden = false;
  $('detail-title').textContent = post.title;
  $('detail-status').textContent = post.status;
  $('summary').textContent = post.summary ?? '—';
  $('tags').replaceChildren(
    ...post.tags.map((tag) => {
      const item = document.createElement('li');
      item.textContent = tag.name;
      return item;
    }),
  );
  setProgress(post.latestRun?.progress ?? 0);
  renderSteps(post.latestRun?.steps ?? []);
}

async function showPost(id: string) {
  selected = id;
  for (const button of document.querySelectorAll<HTMLButtonElement>('#posts button')) {
    button.setAttribute('aria-current', String(button.dataset.id === id));
  }
  $('message').textContent = '';
  watching?.abort();
  watching = null;
  const { post } = await request<{ post: PostDetail | null }>(POST, { id });
  if (!post || selected !== id) return;
  renderDetail(post);
  // A run already in flight (started here, elsewhere or by another user) is followed live too.
  if (post.latestRun && ACTIVE_RUN.has(post.latestRun.status)) {
    await watchRun(id, post.latestRun.id);
  }
}

/** Follows a run over the pipelineRun subscription until it ends, then shows the result. */
async function watchRun(postId: string, runId: string) {
  watching?.abort();
  const controller = new AbortController();
  watching = controller;
  try {
    await subscribe<{ pipelineRun: RunEvent }>(
      WATCH,
      { id: runId },
      ({ pipelineRun }) => applyEvent(pipelineRun),
      controller.signal,
    );
  } catch (error) {
    if (controller.signal.aborted) return;
    throw error;
  }
  if (selected !== postId) return;
  const { post } = await request<{ post: PostDetail | null }>(POST, { id: postId });
  if (post) renderDetail(post);
  $('message').textContent = `Run ${post?.latestRun?.status.toLowerCase() ?? 'finished'}.`;
  await loadPosts(true);
}

async function loadPosts(reset: boolean) {
  const data = await request<{
    posts: {
      edges: { node: PostSummary }[];
      pageInfo: { hasNextPage: boolean; endCursor: string | null };
    };
  }>(POSTS, { after: reset ? null : nextCursor });
  if (reset) $('posts').replaceChildren();
  for (const { node } of data.posts.edges) {
    const item = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.dataset.id = node.id;
    button.textContent = node.title;
    const status = document.createElement('span');
    status.className = 'status';
    status.textContent = node.status;
    button.append(status);
    button.addEventListener('click', () => void showPost(node.id).catch(showError));
    item.append(button);
    $('posts').append(item);
  }
  nextCursor = data.posts.pageInfo.endCursor;
  $('more').hidden = !data.posts.pageInfo.hasNextPage;
}

/** Applies one pushed event to the page: the bar and the step it names, without refetching. */
function applyEvent(event: RunEvent) {
  setProgress(event.progress);
  $('message').textContent = `Run ${event.runStatus.toLowerCase()}…`;
  const row = event.step
    ? $('steps').querySelector<HTMLLIElement>(`[data-step="${event.step}"]`)
    : null;
  if (row && event.stepProgress !== null) {
    const status =
      event.type === 'step.succeeded'
        ? 'SUCCEEDED'
        : event.type === 'step.failed'
          ? 'FAILED'
          : 'RUNNING';
    row.className = status;
    row.textContent = `${event.step} — ${status.toLowerCase()} (${event.stepProgress}%)`;
  }
  if (event.error) $('message').textContent = `Error: ${event.error}`;
}

async function startPipeline() {
  const postId = selected;
  if (!postId) return;
  $('message').textContent = 'Starting…';
  try {
    const { startPipeline } = await request<{ startPipeline: { pipelineRun: { id: string } } }>(
      START,
      { postId },
    );
    const run = startPipeline.pipelineRun;
    const { post } = await request<{ post: PostDetail | null }>(POST, { id: postId });
    if (post) renderDetail(post);
    $('message').textContent = 'Run queued…';
    await watchRun(postId, run.id);
  } catch (error) {
    showError(error);
  }
}

function showError(error: unknown) {
  const code = error instanceof GraphQLRequestError ? ` (${error.code})` : '';
  $('message').textContent = `${(error as Error).message}${code}`;
}

async function showViewer() {
  try {
    const { viewer } = await request<{ viewer: { name: string; role: string } | null }>(VIEWER);
    $('viewer').textContent = viewer ? `${viewer.name} · ${viewer.role}` : 'anonymous';
  } catch (error) {
    $('viewer').textContent = (error as Error).message;
  }
}

$<HTMLInputElement>('token').value = token.get();
$('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  token.set($<HTMLInputElement>('token').value);
  void showViewer();
  void loadPosts(true);
});
$('more').addEventListener('click', () => void loadPosts(false));
$('start').addEventListener('click', () => void startPipeline());
void showViewer();
void loadPosts(true);
