import type { Role } from '../../db/tables.ts';

/** Who is asking: resolved once per request from the bearer token. */
export interface Viewer {
  id: string;
  role: Role;
}

export const isStaff = (viewer: Viewer | null): boolean =>
  viewer?.role === 'EDITOR' || viewer?.role === 'ADMIN';
