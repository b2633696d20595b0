// Preloaded into a process by `npm run bench -- --profile <dir>` (NODE_OPTIONS=--import, which
// refuses --cpu-prof): samples its CPU and writes <dir>/<pid>.cpuprofile at exit, readable by
// Chrome DevTools or `bench/profile-summary.ts`. SIGUSR2 discards what was sampled so far, so the
// profile covers the phase being measured (the harness sends it when the deliveries start).
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const dir = process.env.CPU_PROFILE_DIR;
const session = new Session();
session.connect();
session.post('Profiler.enable');
session.post('Profiler.start');
process.on('SIGUSR2', () => {
  session.post('Profiler.stop', () => session.post('Profiler.start'));
});
// The in-process session answers synchronously, so the profile is written before the exit ends.
process.on('exit', () => {
  session.post('Profiler.stop', (error, result) => {
    if (!error) writeFileSync(`${dir}/${process.pid}.cpuprofile`, JSON.stringify(result.profile));
  });
});
