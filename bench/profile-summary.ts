import { readFileSync } from 'node:fs';

/**
 * `node --import tsx bench/profile-summary.ts <file.cpuprofile> [top]`: the self time of a CPU
 * profile by function and by package (or Quire's own folder), largest first, as shares of the
 * sampled time, idle and GC included.
 */
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [file, top = '25'] = process.argv.slice(2);
if (!file) throw new Error('usage: profile-summary.ts <file.cpuprofile> [top]');
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const byFunction = new Map<string, number>();
const byPackage = new Map<string, number>();
let total = 0;
profile.samples.forEach((id, index) => {
  const delta = profile.timeDeltas[index] ?? 0;
  const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
  const where = url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/(src|bench)\//, '$1/');
  const name = `${functionName || '(anonymous)'} ${where}:${lineNumber + 1}`;
  const pkg = url.includes('node_modules/')
    ? /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)![1]!
    : url.startsWith('node:')
      ? 'node'
      : url
        ? where.split('/').slice(0, 2).join('/')
        : functionName;
  byFunction.set(name, (byFunction.get(name) ?? 0) + delta);
  byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + delta);
  total += delta;
});
const print = (title: string, totals: Map<string, number>) => {
  console.log(`\n${title} (of ${(total / 1e6).toFixed(1)} s sampled)`);
  for (const [name, time] of [...totals].sort((a, b) => b[1] - a[1]).slice(0, Number(top)))
    console.log(`${((100 * time) / total).toFixed(1).padStart(5)} %  ${name}`);
};
print('self time by package', byPackage);
print('self time by function', byFunction);
