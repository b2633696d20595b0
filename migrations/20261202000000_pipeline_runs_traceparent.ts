import { type Kysely, sql } from 'kysely';

// Frozen in time: migrations never import application code.
//
// The W3C traceparent of the request that queued (or re-queued) a run, when tracing was on: the
// worker, possibly in another process and much later, links its run and step spans to it.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table pipeline_runs add column traceparent text`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table pipeline_runs drop column traceparent`.execute(db);
}
