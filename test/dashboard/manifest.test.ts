import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { dashboardManifest, dashboardManifestFile } from '../../src/dashboard/manifest.ts';

describe('the dashboard trusted-documents manifest', () => {
  it('matches the dashboard operations (run `npm run manifest`)', () => {
    expect(readFileSync(dashboardManifestFile, 'utf8')).toBe(dashboardManifest());
  });
});
