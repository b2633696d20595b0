import { type Kysely, sql } from 'kysely';

// Frozen in time: migrations never import application code.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table users (
      id bigint generated always as identity primary key,
      email text not null check (email ~ '^[^@\\s]+@[^@\\s]+$' and length(email) <= 254),
      name text not null check (length(name) between 1 and 100),
      role text not null default 'AUTHOR' check (role in ('ADMIN', 'EDITOR', 'AUTHOR', 'VIEWER')),
      created_at timestamptz not null default now()
    );
    create unique index users_email_lower_key on users (lower(email));
    create index users_created_at_id_idx on users (created_at desc, id desc);

    create table api_tokens (
      id bigint generated always as identity primary key,
      user_id bigint not null references users (id) on delete cascade,
      name text not null default '',
      token_hash text not null unique,
      created_at timestamptz not null default now(),
      last_used_at timestamptz,
      revoked_at timestamptz
    );
    create index api_tokens_user_id_idx on api_tokens (user_id);

    create table posts (
      id bigint generated always as identity primary key,
      author_id bigint not null references users (id) on delete cascade,
      title text not null check (length(title) between 1 and 200),
      slug text not null unique check (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' and length(slug) <= 120),
      body text not null check (length(body) <= 200000),
      summary text,
      meta_description text,
      keywords text[] not null default '{}',
      status text not null default 'DRAFT'
        check (status in ('DRAFT', 'QUEUED', 'PROCESSING', 'REVIEW', 'PUBLISHED', 'FAILED', 'ARCHIVED')),
      word_count integer not null default 0,
      reading_minutes integer not null default 0,
      readability_score real,
      seo_score integer check (seo_score between 0 and 100),
      search tsvector generated always as (
        setweight(to_tsvector('english', title), 'A') ||
        setweight(to_tsvector('english', coalesce(summary, '')), 'B') ||
        setweight(to_tsvector('english', body), 'C')
      ) stored,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      published_at timestamptz
    );
    create index posts_status_created_idx on posts (status, created_at desc, id desc);
    create index posts_author_created_idx on posts (author_id, created_at desc, id desc);
    create index posts_created_idx on posts (created_at desc, id desc);
    create index posts_updated_idx on posts (updated_at desc, id desc);
    create index posts_title_idx on posts (title, id);
    create index posts_published_idx on posts (published_at desc, id desc) where status = 'PUBLISHED';
    create index posts_search_idx on posts using gin (search);

    create table tags (
      id bigint generated always as identity primary key,
      name text not null unique check (name ~ '^[a-z0-9]+(-[a-z0-9]+)*$' and length(name) <= 50),
      created_at timestamptz not null default now()
    );

    create table post_tags (
      post_id bigint not null references posts (id) on delete cascade,
      tag_id bigint not null references tags (id) on delete cascade,
      primary key (post_id, tag_id)
    );
    create index post_tags_tag_post_idx on post_tags (tag_id, post_id);

    create table comments (
      id bigint generated always as identity primary key,
      post_id bigint not null references posts (id) on delete cascade,
      author_id bigint not null references users (id) on delete cascade,
      body text not null check (length(body) between 1 and 10000),
      created_at timestamptz not null default now()
    );
    create index comments_post_created_idx on comments (post_id, created_at desc, id desc);
    create index comments_author_idx on comments (author_id);

    create table pipeline_runs (
      id bigint generated always as identity primary key,
      post_id bigint not null references posts (id) on delete cascade,
      status text not null default 'QUEUED'
        check (status in ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
      steps text[] not null,
      auto_publish boolean not null default false,
      attempt integer not null default 0,
      progress integer not null default 0 check (progress between 0 and 100),
      current_step text,
      error text,
      cancel_requested boolean not null default false,
      created_by bigint references users (id) on delete set null,
      run_after timestamptz not null default now(),
      locked_by text,
      locked_until timestamptz,
      created_at timestamptz not null default now(),
      started_at timestamptz,
      finished_at timestamptz
    );
    create unique index pipeline_runs_one_active_per_post on pipeline_runs (post_id)
      where status in ('QUEUED', 'RUNNING');
    create index pipeline_runs_post_created_idx on pipeline_runs (post_id, created_at desc, id desc);
    create index pipeline_runs_claimable_idx on pipeline_runs (run_after, id)
      where status in ('QUEUED', 'RUNNING');

    create table pipeline_steps (
      id bigint generated always as identity primary key,
      run_id bigint not null references pipeline_runs (id) on delete cascade,
      position integer not null,
      name text not null,
      status text not null default 'PENDING'
        check (status in ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
      progress integer not null default 0 check (progress between 0 and 100),
      attempt integer not null default 0,
      output jsonb,
      error text,
      started_at timestamptz,
      finished_at timestamptz,
      unique (run_id, position)
    );

    create table pipeline_events (
      id bigint generated always as identity primary key,
      run_id bigint not null references pipeline_runs (id) on delete cascade,
      seq integer not null,
      type text not null,
      payload jsonb not null default '{}',
      created_at timestamptz not null default now(),
      unique (run_id, seq)
    );
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    drop table pipeline_events, pipeline_steps, pipeline_runs, comments, post_tags, tags, posts,
      api_tokens, users;
  `.execute(db);
}
