import { filter } from 'graphql-yoga';
import { builder } from '../../builder.ts';
import { groupByKey, inKeyOrder } from '../../db/batch.ts';
import { pageLimits, parsePageArgs, toParentPages } from '../../db/keyset.ts';
import type { PipelineRunRow, PipelineStepRow } from '../../db/tables.ts';
import type { PipelineEventMessage, PostStatusMessage } from '../../infra/pubsub.ts';
import { stepRegistry } from '../../pipeline/registry.ts';
import { canSeePost, postIdsVisibleTo } from '../post/post.policy.ts';
import { PostNode, PostStatus } from '../post/post.schema.ts';
import { UserNode } from '../user/user.schema.ts';
import {
  countEventsByRuns,
  countRunsByPosts,
  eventOrder,
  eventPagesByRuns,
  eventsByIds,
  latestRunsByPosts,
  runOrder,
  runPagesByPosts,
  runsByIds,
  stepsByRuns,
  toEventMessage,
} from './pipeline.repository.ts';
import { cancelPipeline, retryPipeline, startPipeline } from './pipeline.service.ts';
import { resumeAfter, streamRunEvents } from './pipeline.stream.ts';

const RunStatus = builder.enumType('PipelineRunStatus', {
  values: ['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'] as const,
});

const StepStatus = builder.enumType('PipelineStepStatus', {
  values: ['PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'] as const,
});

const PipelineStep = builder.objectRef<PipelineStepRow>('PipelineStep').implement({
  description: 'One step of a run, in order.',
  fields: (t) => ({
    position: t.exposeInt('position'),
    name: t.exposeString('name'),
    description: t.string({
      nullable: true,
      resolve: (step) => stepRegistry.get(step.name)?.description ?? null,
    }),
    status: t.expose('status', { type: StepStatus }),
    progress: t.exposeInt('progress', { description: '0–100.' }),
    attempt: t.exposeInt('attempt', { description: 'How many times the step was started.' }),
    output: t.expose('output', { type: 'JSON', nullable: true }),
    error: t.exposeString('error', { nullable: true }),
    startedAt: t.expose('started_at', { type: 'DateTime', nullable: true }),
    finishedAt: t.expose('finished_at', { type: 'DateTime', nullable: true }),
  }),
});

/** Runs are visible to whoever may see their post. */
export const PipelineRunNode = builder.loadableNode('PipelineRun', {
  description: 'One execution of the processing pipeline over a post.',
  id: { resolve: (run: PipelineRunRow) => run.id },
  load: async (ids: string[], ctx) => {
    const runs = inKeyOrder(ids, await runsByIds(ctx.db, ids), (run) => run.id);
    const visible = await postIdsVisibleTo(
      ctx,
      runs.flatMap((run) => (run ? [run.post_id] : [])),
    );
    return runs.map((run) => (run && visible.has(run.post_id) ? run : null));
  },
  fields: (t) => ({
    status: t.expose('status', { type: RunStatus }),
    progress: t.exposeInt('progress', { description: '0–100 over all steps.' }),
    currentStep: t.exposeString('current_step', { nullable: true }),
    attempt: t.exposeInt('attempt', { description: 'How many times a worker claimed the run.' }),
    autoPublish: t.exposeBoolean('auto_publish'),
    cancelRequested: t.exposeBoolean('cancel_requested'),
    error: t.exposeString('error', { nullable: true }),
    createdAt: t.expose('created_at', { type: 'DateTime' }),
    startedAt: t.expose('started_at', { type: 'DateTime', nullable: true }),
    finishedAt: t.expose('finished_at', { type: 'DateTime', nullable: true }),
    post: t.field({ type: PostNode, nullable: true, resolve: (run) => run.post_id }),
    createdBy: t.field({ type: UserNode, nullable: true, resolve: (run) => run.created_by }),
    steps: t.loadableList({
      type: PipelineStep,
      load: async (runIds: string[], ctx) =>
        groupByKey(runIds, await stepsByRuns(ctx.db, runIds), (step) => step.run_id),
      resolve: (run) => run.id,
    }),
  }),
});

export const PipelineEventNode = builder.loadableNode('PipelineEvent', {
  description: 'An append-only record of one run state change; the unit of subscription replay.',
  id: { resolve: (event: PipelineEventMessage) => event.id },
  load: async (ids: string[], ctx) => {
    const rows = await eventsByIds(ctx.db, ids);
    const visible = await postIdsVisibleTo(
      ctx,
      rows.map((row) => row.post_id),
    );
    return inKeyOrder(
      ids,
      rows.filter((row) => visible.has(row.post_id)).map((row) => toEventMessage(row, row.post_id)),
      (event) => event.id,
    );
  },
  fields: (t) => ({
    sequence: t.exposeInt('seq', { description: 'Gapless position within the run, from 1.' }),
    type: t.exposeString('type', {
      description:
        'run.queued, run.started, step.started, step.progress, step.succeeded, step.retrying, step.failed, run.cancel_requested, run.released, run.retried, run.succeeded, run.failed, run.cancelled',
    }),
    runStatus: t.field({ type: RunStatus, resolve: (event) => event.payload.status as never }),
    progress: t.int({
      description: 'Run progress, 0–100.',
      resolve: (event) => Number(event.payload.progress ?? 0),
    }),
    step: t.string({
      nullable: true,
      resolve: (event) => (event.payload.step as string | undefined) ?? null,
    }),
    stepProgress: t.int({
      nullable: true,
      resolve: (event) => (event.payload.stepProgress as number | undefined) ?? null,
    }),
    error: t.string({
      nullable: true,
      resolve: (event) => (event.payload.error as string | undefined) ?? null,
    }),
    payload: t.expose('payload', { type: 'JSON' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    run: t.field({ type: PipelineRunNode, resolve: (event) => event.runId }),
  }),
});

const PipelineRunConnection = builder.connectionObject({
  type: PipelineRunNode,
  name: 'PipelineRunConnection',
});
const PipelineEventConnection = builder.connectionObject({
  type: PipelineEventNode,
  name: 'PipelineEventConnection',
});

builder.objectField(PipelineRunNode, 'events', (t) =>
  t.loadable({
    type: PipelineEventConnection,
    description: 'Events in order; `after` takes an event cursor.',
    byPath: true,
    args: t.arg.connectionArgs(),
    load: async (runIds: string[], ctx, args) => {
      const page = parsePageArgs(args, eventOrder, pageLimits(ctx.config));
      const rows = await eventPagesByRuns(ctx.db, runIds, page);
      return toParentPages(
        runIds,
        rows.map((row) => toEventMessage(row, row.post_id)),
        (event) => event.runId,
        page,
        eventOrder,
        (event) => ({ value: event.seq, id: event.id }),
        () => countEventsByRuns(ctx.db, runIds),
      );
    },
    resolve: (run) => run.id,
  }),
);

builder.objectFields(PostNode, (t) => ({
  pipelineRuns: t.loadable({
    type: PipelineRunConnection,
    description: 'Runs of this post, newest first.',
    byPath: true,
    args: t.arg.connectionArgs(),
    load: async (postIds: string[], ctx, args) => {
      const page = parsePageArgs(args, runOrder, pageLimits(ctx.config));
      const rows = await runPagesByPosts(ctx.db, postIds, page);
      return toParentPages(
        postIds,
        rows,
        (run) => run.post_id,
        page,
        runOrder,
        (run) => ({ value: run.created_at, id: run.id }),
        () => countRunsByPosts(ctx.db, postIds),
      );
    },
    resolve: (post) => post.id,
  }),
  latestRun: t.loadable({
    type: PipelineRunNode,
    nullable: true,
    load: async (postIds: string[], ctx) =>
      inKeyOrder(postIds, await latestRunsByPosts(ctx.db, postIds), (run) => run.post_id),
    resolve: (post) => post.id,
  }),
}));

const StartPipelineInput = builder.inputType('StartPipelineInput', {
  fields: (t) => ({
    postId: t.globalID({ for: PostNode, required: true }),
    steps: t.stringList({ description: 'Step names in order; the full pipeline when omitted.' }),
    autoPublish: t.boolean({ description: 'Publish at the end instead of REVIEW (editors only).' }),
  }),
});

builder.queryField('pipelineSteps', (t) =>
  t.stringList({
    description: 'Names of the registered steps, in default pipeline order.',
    resolve: () => [...stepRegistry.keys()],
  }),
);

builder.mutationFields((t) => ({
  startPipeline: t.field({
    authScopes: { writer: true },
    type: PipelineRunNode,
    description: 'Queues a run; a post has at most one active run (else CONFLICT).',
    args: { input: t.arg({ type: StartPipelineInput, required: true }) },
    resolve: (_root, { input }, ctx) => startPipeline(ctx, input.postId.id, input),
  }),
  cancelPipeline: t.field({
    authScopes: { writer: true },
    type: PipelineRunNode,
    description: 'A queued run stops now; a running one at its next step boundary.',
    args: { runId: t.arg.globalID({ for: PipelineRunNode, required: true }) },
    resolve: (_root, args, ctx) => cancelPipeline(ctx, args.runId.id),
  }),
  retryPipeline: t.field({
    authScopes: { writer: true },
    type: PipelineRunNode,
    description: 'Re-queues a failed or cancelled run from its first unfinished step.',
    args: { runId: t.arg.globalID({ for: PipelineRunNode, required: true }) },
    resolve: (_root, args, ctx) => retryPipeline(ctx, args.runId.id),
  }),
}));

// The status travels in the message: by the time a subscriber resolves the post, the worker may
// have moved it on, and a dashboard must still see every transition in order.
const PostStatusChange = builder.objectRef<PostStatusMessage>('PostStatusChange').implement({
  description: 'One status transition of a post, as it happened.',
  fields: (t) => ({
    status: t.field({
      type: PostStatus,
      description: 'The status the post moved to in this change.',
      resolve: (change) => change.status,
    }),
    post: t.field({
      type: PostNode,
      nullable: true,
      description: 'The post as it is now; null once it is deleted or hidden from the viewer.',
      resolve: (change) => change.postId,
    }),
  }),
});

builder.subscriptionFields((t) => ({
  pipelineRun: t.field({
    type: PipelineEventNode,
    description:
      'Events of one run: stored events after `afterEventId` first, then live ones; completes after the run ends. NOT_FOUND for a run the viewer may not see; BAD_USER_INPUT for an `afterEventId` (or SSE `Last-Event-ID`) that is not an event of this run.',
    args: {
      id: t.arg.globalID({ for: PipelineRunNode, required: true }),
      afterEventId: t.arg.globalID({
        for: PipelineEventNode,
        description:
          'Resume after this event. Over SSE a `Last-Event-ID` header (sent by a reconnecting EventSource) wins over this argument: the reconnect repeats the original request, argument included, and only the header says how far the stream got.',
      }),
    },
    subscribe: (_root, args, ctx) =>
      streamRunEvents(ctx, args.id.id, resumeAfter(ctx, args.afterEventId?.id ?? null)),
    resolve: (event) => event,
  }),
  postStatusChanged: t.field({
    type: PostStatusChange,
    description:
      'A post the viewer may see changed status (pipeline or edit); optionally one author’s.',
    args: { authorId: t.arg.globalID({ for: UserNode }) },
    subscribe: (_root, args, ctx) => {
      const authorId = args.authorId?.id;
      // yoga's filter returns its source as soon as it is returned, even with no event pending.
      return filter(
        (change: PostStatusMessage) =>
          (!authorId || change.authorId === authorId) &&
          canSeePost(ctx.viewer, { status: change.status, author_id: change.authorId }),
      )(ctx.deps.pubsub.subscribe('postStatusChanged'));
    },
    resolve: (change) => change,
  }),
}));
