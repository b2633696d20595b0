/** Postgres UTC text (`2026-11-23 12:00:00.123456+00`) as RFC 3339 (`2026-11-23T12:00:00.123456Z`). */
export function toRfc3339(timestamp: string): string {
  return timestamp.replace(' ', 'T').replace(/\+00$/, 'Z');
}

export function timestampMillis(timestamp: string): number {
  return Date.parse(toRfc3339(timestamp));
}
