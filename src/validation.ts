import type { z } from 'zod';
import { badInput } from './errors.ts';

/** Validates a mutation input; every problem is listed under `extensions.fields`. */
export function parseInput<Schema extends z.ZodType>(
  schema: Schema,
  value: unknown,
  argument = 'input',
): z.output<Schema> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const fields = parsed.error.issues.map((issue) => ({
    path: [argument, ...issue.path].join('.'),
    message: issue.message,
  }));
  const first = fields[0];
  throw badInput(first ? `Invalid input at ${first.path}: ${first.message}` : 'Invalid input', {
    fields,
  });
}
