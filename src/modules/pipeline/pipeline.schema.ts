import { filter } from 'graphql-yoga';
import { builder } from '../../builder.ts';
import { groupByKey, inKeyOrder } from '../../db/batch.ts';
import { pageLimits, parsePageArgs, toParentPages } from '../../db/keyset.ts';
import type { PipelineRunRow, PipelineStepRow } from '../../db/tables.ts';
import { mutationErrors } from '../../errors.ts';
import type { PipelineEventMessage, PostStatusMessage } from '../../infra/pubsub.ts';
import { stepRegistry } from '../../processing/registry.ts';
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
  description: 'Where a pipeline run is in its life; SUCCEEDED, FAILED and CANCELLED are final.',
  values: {
    QUEUED: {
      description: 'Waiting for a worker (new, released by a stopping worker, or retried).',
    },
    RUNNING: { description: 'A worker holds it and is running its steps.' },
    SUCCEEDED: { description: 'Every step succeeded.' },
    FAILED: { description: 'A step failed after its last retry; `retryPipeline` can resume it.' },
    CANCELLED: { description: 'Stopped by `cancelPipeline`; `retryPipeline` can resume it.' },
  } as const,
});

const StepStatus = builder.enumType('PipelineStepStatus', {
  description: 'Where one step of a run is.',
  values: {
    PENDING: { description: 'Not started yet.' },
    RUNNING: { description: 'Running now (or retrying after a failure).' },
    SUCCEEDED: { description: 'Done; its output and post changes are committed.' },
    FAILED: { description: 'Failed after its last retry; `error` says why.' },
    CANCELLED: { description: 'Not run because the run was cancelled.' },
  } as const,
});

const PipelineStep = builder.objectRef<PipelineStepRow>('PipelineStep').implement({
  description: 'One step of a run, in order.',
  fields: (t) => ({
    position: t.exposeInt('position', { description: 'Order within the run, from 0.' }),
    name: t.exposeString('name', { description: 'The registered step name, e.g. `normalize`.' }),
    description: t.string({
      nullable: true,
      description: 'What the registered step does; null when no step of that name is registered.',
      resolve: (step) => stepRegistry.get(step.name)?.description ?? null,
    }),
    status: t.expose('status', { type: StepStatus, description: 'Where this step is.' }),
    progress: t.exposeInt('progress', { description: '0–100.' }),
    attempt: t.exposeInt('attempt', { description: 'How many times the step was started.' }),
    output: t.expose('output', {
      type: 'JSON',
      nullable: true,
      description: 'What the step produced (its own JSON shape); null until it succeeds.',
    }),
    error: t.exposeString('error', {
      nullable: true,
      description: 'The last failure message; null when it has not failed.',
    }),
    startedAt: t.expose('started_at', {
      type: 'DateTime',
      nullable: true,
      description: 'When it last started; null while PENDING.',
    }),
    finishedAt: t.expose('finished_at', {
      type: 'DateTime',
      nullable: true,
      description: 'When it ended; null until it does.',
    }),
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
    status: t.expose('status', { type: RunStatus, description: 'Where the run is.' }),
    progress: t.exposeInt('progress', { description: '0–100 over all steps.' }),
    currentStep: t.exposeString('current_step', {
      nullable: true,
      description: 'Name of the step running now; null when none is.',
    }),
    attempt: t.exposeInt('attempt', { description: 'How many times a worker claimed the run.' }),
    autoPublish: t.exposeBoolean('auto_publish', {
      description: 'Whether the run publishes the post at the end instead of handing it to REVIEW.',
    }),
    cancelRequested: t.exposeBoolean('cancel_requested', {
      description: 'True once `cancelPipeline` was called; a running run stops at its next step.',
    }),
    error: t.exposeString('error', {
      nullable: true,
      description: 'Why the run failed; null unless FAILED.',
    }),
    createdAt: t.expose('created_at', { type: 'DateTime', description: 'When it was queued.' }),
    startedAt: t.expose('started_at', {
      type: 'DateTime',
      nullable: true,
      description: 'When a worker first claimed it; null while never claimed.',
    }),
    finishedAt: t.expose('finished_at', {
      type: 'DateTime',
      nullable: true,
      description: 'When it reached a final status; null until then.',
    }),
    post: t.field({
      type: PostNode,
      nullable: true,
      description: 'The processed post; null once deleted or hidden from the viewer.',
      resolve: (run) => run.post_id,
    }),
    createdBy: t.field({
      type: UserNode,
      nullable: true,
      description: 'Who started it; null when that user no longer exists.',
      resolve: (run) => run.created_by,
    }),
    steps: t.loadableList({
      type: PipelineStep,
      description: 'Every step of the run, by position.',
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
    runStatus: t.field({
      type: RunStatus,
      description: 'The run’s status right after this event.',
      resolve: (event) => event.payload.status as never,
    }),
    progress: t.int({
      description: 'Run progress, 0–100.',
      resolve: (event) => Number(event.payload.progress ?? 0),
    }),
    step: t.string({
      nullable: true,
      description: 'The step the event is about; null for run-level events.',
      resolve: (event) => (event.payload.step as string | undefined) ?? null,
    }),
    stepProgress: t.int({
      nullable: true,
      description: 'The step’s progress, 0–100; null for run-level events.',
      resolve: (event) => (event.payload.stepProgress as number | undefined) ?? null,
    }),
    error: t.string({
      nullable: true,
      description: 'The failure message of a failed or retrying step or run; null otherwise.',
      resolve: (event) => (event.payload.error as string | undefined) ?? null,
    }),
    payload: t.expose('payload', {
      type: 'JSON',
      description: 'Everything recorded with the event (the fields above and more).',
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When it was recorded.' }),
    run: t.field({
      type: PipelineRunNode,
      description: 'The run it belongs to.',
      resolve: (event) => event.runId,
    }),
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
    description: 'The most recent run of this post; null when it never ran.',
    load: async (postIds: string[], ctx) =>
      inKeyOrder(postIds, await latestRunsByPosts(ctx.db, postIds), (run) => run.post_id),
    resolve: (post) => post.id,
  }),
}));

builder.queryField('pipelineSteps', (t) =>
  t.stringList({
    description: 'Names of the registered steps, in default pipeline order.',
    resolve: () => [...stepRegistry.keys()],
  }),
);

builder.relayMutationField(
  'startPipeline',
  {
    description: 'What to run over which post.',
    inputFields: (t) => ({
      postId: t.globalID({
        for: PostNode,
        required: true,
        description:
          'The post; NOT_FOUND when the viewer may not see it, FORBIDDEN when not theirs.',
      }),
      steps: t.stringList({
        description:
          'Step names in order (see `pipelineSteps`); the full pipeline when omitted. BAD_USER_INPUT for an unknown name.',
      }),
      autoPublish: t.boolean({
        description: 'Publish at the end instead of REVIEW (editors only, else FORBIDDEN).',
      }),
    }),
  },
  {
    authScopes: { writer: true },
    description: `Queues a run; a post has at most one active run. Writers only, over posts they may edit. ${mutationErrors('UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, BAD_USER_INPUT, CONFLICT (an active run), RATE_LIMITED')}`,
    resolve: async (_root, { input }, ctx) => ({
      pipelineRun: await startPipeline(ctx, input.postId.id, input),
    }),
  },
  {
    description: 'The run queued.',
    outputFields: (t) => ({
      pipelineRun: t.field({
        type: PipelineRunNode,
        description: 'The new run, QUEUED.',
        resolve: (payload) => payload.pipelineRun,
      }),
    }),
  },
);

builder.relayMutationField(
  'cancelPipeline',
  {
    description: 'The run to cancel.',
    inputFields: (t) => ({
      runId: t.globalID({
        for: PipelineRunNode,
        required: true,
        description: 'The run; NOT_FOUND when not visible, CONFLICT when it has already ended.',
      }),
    }),
  },
  {
    authScopes: { writer: true },
    description: `A queued run stops now; a running one at its next step boundary. ${mutationErrors('UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, BAD_USER_INPUT, CONFLICT (already ended), RATE_LIMITED')}`,
    resolve: async (_root, { input }, ctx) => ({
      pipelineRun: await cancelPipeline(ctx, input.runId.id),
    }),
  },
  {
    description: 'The run as cancelled.',
    outputFields: (t) => ({
      pipelineRun: t.field({
        type: PipelineRunNode,
        description: 'The run: CANCELLED, or still RUNNING until its current step ends.',
        resolve: (payload) => payload.pipelineRun,
      }),
    }),
  },
);

builder.relayMutationField(
  'retryPipeline',
  {
    description: 'The run to retry.',
    inputFields: (t) => ({
      runId: t.globalID({
        for: PipelineRunNode,
        required: true,
        description:
          'The run; NOT_FOUND when not visible, CONFLICT unless FAILED or CANCELLED or while the post has another active run.',
      }),
    }),
  },
  {
    authScopes: { writer: true },
    description: `Re-queues a failed or cancelled run from its first unfinished step. ${mutationErrors('UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, BAD_USER_INPUT, CONFLICT, RATE_LIMITED')}`,
    resolve: async (_root, { input }, ctx) => ({
      pipelineRun: await retryPipeline(ctx, input.runId.id),
    }),
  },
  {
    description: 'The run re-queued.',
    outputFields: (t) => ({
      pipelineRun: t.field({
        type: PipelineRunNode,
        description: 'The run, QUEUED again.',
        resolve: (payload) => payload.pipelineRun,
      }),
    }),
  },
);

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
      id: t.arg.globalID({
        for: PipelineRunNode,
        required: true,
        description: 'The run to follow.',
      }),
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
    args: {
      authorId: t.arg.globalID({
        for: UserNode,
        description: 'Only this author’s posts; every visible post when omitted.',
      }),
    },
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
