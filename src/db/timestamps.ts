/**
 * Postgres UTC text (`2026-11-23 12:00:00.123456+00`) as RFC 3339 (`2026-11-23T12:00:00.123456Z`).
 * Runs for every timestamp a response carries, so it slices rather than matching patterns.
 */
export function toRfc3339(timestamp: string): string {
  const utc = timestamp.endsWith('+00') ? `${timestamp.slice(0, -3)}Z` : timestamp;
  const space = utc.indexOf(' ');
  return space === -1 ? utc : `${utc.slice(0, space)}T${utc.slice(space + 1)}`;
}

export function timestampMillis(timestamp: string): number {
  return Date.parse(toRfc3339(timestamp));
}
