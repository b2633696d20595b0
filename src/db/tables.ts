import type { ColumnType, Insertable, Selectable, SelectType, Updateable } from 'kysely';
import type * as Generated from './tables.generated.ts';

/**
 * The table types the code uses: src/db/tables.generated.ts (generated from the migrated
 * database, `npm run db:types`) with the few columns the database types more loosely than it
 * constrains them narrowed here. A narrowed column must exist in the generated table, so a
 * migration that drops or renames one fails the typecheck here.
 */

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

/**
 * A text column whose check constraint lists its values (`status in (…)`): the union `T`, still
 * optional on insert when the generated column has a default.
 */
type Narrowed<Column, T> =
  Column extends ColumnType<unknown, infer Insert, unknown>
    ? ColumnType<T, undefined extends Insert ? T | undefined : T, T>
    : T;

/** Written only by the database (a trigger or a generated column): read, never written. */
type ReadOnly<Column> = ColumnType<SelectType<Column>, never, never>;

/** `Table` with the columns of `Refined` replaced; every refined column exists in `Table`. */
type Refine<Table, Refined extends Partial<Record<keyof Table, unknown>>> = Omit<
  Table,
  keyof Refined
> &
  Refined;

export interface Database {
  users: Refine<Generated.Users, { role: Narrowed<Generated.Users['role'], Role> }>;
  api_tokens: Generated.ApiTokens;
  posts: Refine<
    Generated.Posts,
    {
      status: Narrowed<Generated.Posts['status'], PostStatus>;
      /** The tsvector, kept by the database from title and body. */
      search: ReadOnly<Generated.Posts['search']>;
    }
  >;
  tags: Generated.Tags;
  post_tags: Refine<
    Generated.PostTags,
    /**
     * The post's created_at, whether it is published and its author, copied by triggers: tag
     * pages walk them through indexes. Only the import passes them (raw SQL, read from the posts
     * it just inserted); the type keeps them unwritten.
     */
    {
      post_created_at: ReadOnly<Generated.PostTags['post_created_at']>;
      post_published: ReadOnly<Generated.PostTags['post_published']>;
      post_author_id: ReadOnly<Generated.PostTags['post_author_id']>;
    }
  >;
  comments: Generated.Comments;
  pipeline_runs: Refine<
    Generated.PipelineRuns,
    { status: Narrowed<Generated.PipelineRuns['status'], RunStatus> }
  >;
  pipeline_steps: Refine<
    Generated.PipelineSteps,
    {
      status: Narrowed<Generated.PipelineSteps['status'], StepStatus>;
      /** jsonb written as JSON text by the steps, read as whatever the step stored. */
      output: ColumnType<unknown, string | undefined, string | null>;
    }
  >;
  pipeline_events: Refine<
    Generated.PipelineEvents,
    /** jsonb, appended as JSON text and never changed: the events table is append-only. */
    { payload: ColumnType<Record<string, unknown>, string, never> }
  >;
}

type PostsTable = Database['posts'];

export type UserRow = Selectable<Database['users']>;
export type PostRow = Omit<Selectable<PostsTable>, 'search' | 'plain_text'>;
export type NewPost = Insertable<PostsTable>;
export type PostUpdate = Updateable<PostsTable>;
export type TagRow = Selectable<Database['tags']>;
export type CommentRow = Selectable<Database['comments']>;
export type PipelineRunRow = Selectable<Database['pipeline_runs']>;
export type PipelineStepRow = Selectable<Database['pipeline_steps']>;
export type PipelineEventRow = Selectable<Database['pipeline_events']>;
