import { lexicographicSortSchema, printSchema } from 'graphql';
import { builder } from './builder.ts';
import './modules/node/node.schema.ts';
import './modules/user/user.schema.ts';
import './modules/tag/tag.schema.ts';
import './modules/post/post.schema.ts';
import './modules/comment/comment.schema.ts';
import './modules/pipeline/pipeline.schema.ts';
import './modules/auth/auth.schema.ts';

export const schema = builder.toSchema();

/** The committed `schema.graphql`: sorted so diffs show real changes only. */
export const printedSchema = `${printSchema(lexicographicSortSchema(schema))}\n`;
