import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

/**
 * Timestamps travel as Postgres' own text (microsecond precision, UTC session) so keyset cursors
 * and cache round trips never lose precision to a JS Date.
 */
export type Timestamp = ColumnType<string, string | undefined, string>;
type Id = Generated<string>;

export type Role = 'ADMIN' | 'EDITOR' | 'AUTHOR' | 'VIEWER';
export type PostStatus =
  | 'DRAFT'
  | 'QUEUED'
  | 'PROCESSING'
  | 'REVIEW'
  | 'PUBLISHED'
  | 'FAILED'
  | 'ARCHIVED';
export type RunStatus = 'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED';
export type StepStatus = 'PENDING' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED';

export interface UsersTable {
  id: Id;
  email: string;
  name: string;
  role: ColumnType<Role, Role | undefined, Role>;
  created_at: Generated<string>;
}

export interface ApiTokensTable {
  id: Id;
  user_id: string;
  name: ColumnType<string, string | undefined, string>;
  token_hash: string;
  created_at: Generated<string>;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface PostsTable {
  id: Id;
  author_id: string;
  title: string;
  slug: string;
  body: string;
  summary: string | null;
  meta_description: string | null;
  keywords: ColumnType<string[], string[] | undefined, string[]>;
  status: ColumnType<PostStatus, PostStatus | undefined, PostStatus>;
  word_count: ColumnType<number, number | undefined, number>;
  reading_minutes: ColumnType<number, number | undefined, number>;
  readability_score: number | null;
  seo_score: number | null;
  /** The body as plain text, written by the pipeline's normalize step; null once the body changes. */
  plain_text: string | null;
  search: ColumnType<string, never, never>;
  created_at: Generated<string>;
  updated_at: Generated<string>;
  published_at: string | null;
}

export interface TagsTable {
  id: Id;
  name: string;
  created_at: Generated<string>;
}

export interface PostTagsTable {
  post_id: string;
  tag_id: string;
  /** The post's created_at, copied by a trigger: tag pages walk it through an index. */
  post_created_at: ColumnType<string, never, never>;
}

export interface CommentsTable {
  id: Id;
  post_id: string;
  author_id: string;
  body: string;
  created_at: Generated<string>;
}

export interface PipelineRunsTable {
  id: Id;
  post_id: string;
  status: ColumnType<RunStatus, RunStatus | undefined, RunStatus>;
  steps: string[];
  auto_publish: ColumnType<boolean, boolean | undefined, boolean>;
  attempt: ColumnType<number, number | undefined, number>;
  progress: ColumnType<number, number | undefined, number>;
  current_step: string | null;
  error: string | null;
  cancel_requested: ColumnType<boolean, boolean | undefined, boolean>;
  created_by: string | null;
  run_after: Generated<string>;
  locked_by: string | null;
  locked_until: string | null;
  created_at: Generated<string>;
  started_at: string | null;
  finished_at: string | null;
}

export interface PipelineStepsTable {
  id: Id;
  run_id: string;
  position: number;
  name: string;
  status: ColumnType<StepStatus, StepStatus | undefined, StepStatus>;
  progress: ColumnType<number, number | undefined, number>;
  attempt: ColumnType<number, number | undefined, number>;
  output: ColumnType<unknown, string | undefined, string | null>;
  error: string | null;
  started_at: string | null;
  finished_at: string | null;
}

export interface PipelineEventsTable {
  id: Id;
  run_id: string;
  /** Gapless per run, assigned under the run's row lock: subscribers detect and fill gaps. */
  seq: number;
  type: string;
  payload: ColumnType<Record<string, unknown>, string, never>;
  created_at: Generated<string>;
}

export interface Database {
  users: UsersTable;
  api_tokens: ApiTokensTable;
  posts: PostsTable;
  tags: TagsTable;
  post_tags: PostTagsTable;
  comments: CommentsTable;
  pipeline_runs: PipelineRunsTable;
  pipeline_steps: PipelineStepsTable;
  pipeline_events: PipelineEventsTable;
}

export type UserRow = Selectable<UsersTable>;
export type PostRow = Omit<Selectable<PostsTable>, 'search' | 'plain_text'>;
export type NewPost = Insertable<PostsTable>;
export type PostUpdate = Updateable<PostsTable>;
export type TagRow = Selectable<TagsTable>;
export type CommentRow = Selectable<CommentsTable>;
export type PipelineRunRow = Selectable<PipelineRunsTable>;
export type PipelineStepRow = Selectable<PipelineStepsTable>;
export type PipelineEventRow = Selectable<PipelineEventsTable>;
