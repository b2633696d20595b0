// Preloaded into a process by `npm run bench -- --profile <dir>` (NODE_OPTIONS=--import, which
// refuses --cpu-prof): samples its CPU from the start and writes <dir>/<pid>.cpuprofile at exit,
// readable by Chrome DevTools or `bench/profile-summary.ts`.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const dir = process.env.CPU_PROFILE_DIR;
const session = new Session();
session.connect();
session.post('Profiler.enable');
session.post('Profiler.start');
// The in-process session answers synchronously, so the profile is written before the exit ends.
process.on('exit', () => {
  session.post('Profiler.stop', (error, result) => {
    if (!error) writeFileSync(`${dir}/${process.pid}.cpuprofile`, JSON.stringify(result.profile));
  });
});
