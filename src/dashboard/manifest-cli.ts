import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dashboardManifest, dashboardManifestFile } from './manifest.ts';

writeFileSync(dashboardManifestFile, dashboardManifest());
console.log(`${fileURLToPath(dashboardManifestFile)} written`);
