import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { GetEndpoint } from '../plugins/get-endpoints.ts';

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));

/** Bundled once per process, on first request: `npm start` needs no separate build step. */
let assets: Promise<Record<string, { body: string; type: string }>> | undefined;

async function loadAssets() {
  const [html, css, bundle] = await Promise.all([
    readFile(here('./index.html'), 'utf8'),
    readFile(here('./styles.css'), 'utf8'),
    build({
      entryPoints: [here('./client/main.ts')],
      bundle: true,
      write: false,
      format: 'esm',
      target: 'es2022',
      minify: true,
    }),
  ]);
  return {
    '/': { body: html, type: 'text/html; charset=utf-8' },
    '/dashboard': { body: html, type: 'text/html; charset=utf-8' },
    '/dashboard/app.css': { body: css, type: 'text/css; charset=utf-8' },
    '/dashboard/app.js': {
      body: bundle.outputFiles[0]!.text,
      type: 'text/javascript; charset=utf-8',
    },
  };
}

/** The pipeline dashboard at `/` (and `/dashboard`), everything from this process. */
export const dashboardEndpoint: GetEndpoint = (_request, pathname, fetchAPI) => {
  if (pathname !== '/' && !pathname.startsWith('/dashboard')) return undefined;
  assets ??= loadAssets().catch((error: unknown) => {
    assets = undefined;
    throw error;
  });
  return assets.then((loaded) => {
    const asset = loaded[pathname];
    return asset
      ? new fetchAPI.Response(asset.body, { headers: { 'content-type': asset.type } })
      : undefined;
  });
};
