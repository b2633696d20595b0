import { stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { GraphQLError } from 'graphql';
import { loadConfig } from '../../../config.ts';
import { createLogger } from '../../../infra/logger.ts';
import { ShutdownSequence } from '../../../infra/shutdown.ts';
import { startRuntime } from '../../../runtime.ts';
import { parseAuthor } from './author.ts';
import {
  type ImportProgress,
  ImportRefused,
  importMarkdown,
  listMarkdownFiles,
  readMarkdownFiles,
} from './markdown-import.ts';

/**
 * `npm run import -- <folder> [--author "Name <email>"] [--process]`: every Markdown file under
 * the folder becomes a post, all or none (exit 1 with a report per file). Reports go to stderr.
 */
const usage =
  'usage: npm run import -- <folder> [--author "Name <email>"] [--process]\n' +
  '  --author   for files whose front matter names no author\n' +
  '  --process  queue the pipeline for every imported post';
const { values, positionals } = (() => {
  try {
    return parseArgs({
      allowPositionals: true,
      options: { author: { type: 'string' }, process: { type: 'boolean', default: false } },
    });
  } catch (error) {
    console.error(`${(error as Error).message}\n${usage}`);
    process.exit(2);
  }
})();
const folder = positionals[0];
const folderIsDirectory = folder
  ? await stat(folder).then(
      (s) => s.isDirectory(),
      () => false,
    )
  : false;
const badAuthor = values.author === undefined ? null : parseAuthor(values.author);
if (positionals.length !== 1 || !folderIsDirectory || typeof badAuthor === 'string') {
  if (folder && !folderIsDirectory) console.error(`${folder}: not a folder`);
  if (typeof badAuthor === 'string') console.error(`--author: ${badAuthor}`);
  console.error(usage);
  process.exit(2);
}

/** A bar on a terminal only: piped or logged output gets the summary lines alone. */
function progressBar(): { onProgress?: ImportProgress; stop(): void } {
  if (!process.stderr.isTTY) return { stop() {} };
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: '{phase} [{bar}] {value}/{total} files', hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  let phase: string | null = null;
  return {
    onProgress(next, done, total) {
      if (phase !== next) {
        if (phase) bar.stop();
        bar.start(total, 0, { phase: next === 'check' ? 'checking' : 'writing ' });
        phase = next;
      }
      bar.update(done);
    },
    stop: () => phase && bar.stop(),
  };
}

const config = loadConfig();
const logger = createLogger({ LOG_LEVEL: 'warn' }, 2);
const shutdown = new ShutdownSequence(logger);
const bar = progressBar();
try {
  const { deps } = await startRuntime(config, logger, shutdown, { allowEmbedded: true });
  const files = await readMarkdownFiles(await listMarkdownFiles(folder!));
  console.error(`importing ${files.length} Markdown files from ${folder}`);
  const report = await importMarkdown(deps, files, {
    defaultAuthor: values.author ?? null,
    process: values.process ?? false,
    onProgress: bar.onProgress,
  });
  bar.stop();
  console.error(
    `imported ${report.posts} posts by ${report.authors} authors with ${report.tagLinks} tag links` +
      `${values.process ? `, ${report.queuedRuns} pipeline runs queued` : ''}` +
      ` in ${report.seconds.toFixed(2)} s (${report.rowsPerSecond} rows/s)`,
  );
} catch (error) {
  bar.stop();
  if (error instanceof ImportRefused) {
    for (const file of error.files) {
      for (const problem of file.problems) console.error(`${file.path}: ${problem}`);
    }
    console.error(error.message);
  } else if (error instanceof GraphQLError) {
    // An expected failure (CONFLICT): its message says it all.
    console.error(`import failed, nothing was written: ${error.message}`);
  } else throw error;
  process.exitCode = 1;
} finally {
  await shutdown.run();
}
// The embedded Postgres package's exit hook ends a drained process with 0 whatever exitCode says.
process.exit(process.exitCode ?? 0);
