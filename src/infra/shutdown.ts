import type { Logger } from './logger.ts';

/** Ordered shutdown: steps run in reverse order of registration, each awaited, failures logged. */
export class ShutdownSequence {
  private readonly steps: { name: string; run: () => Promise<void> }[] = [];
  private running: Promise<boolean> | undefined;

  constructor(private readonly logger: Logger) {}

  add(name: string, run: () => Promise<void>): void {
    this.steps.push({ name, run });
  }

  /**
   * Runs every step once (later calls get the same result): true when all succeeded. With
   * `deadlineMs`, resolves false once it passes, naming the step still running.
   */
  run(deadlineMs?: number): Promise<boolean> {
    this.running ??= this.runSteps(deadlineMs);
    return this.running;
  }

  private async runSteps(deadlineMs: number | undefined): Promise<boolean> {
    let current = '';
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<boolean>((resolve) => {
      if (deadlineMs === undefined) return;
      timer = setTimeout(() => {
        this.logger.error({ step: current, deadlineMs }, 'shutdown deadline passed');
        resolve(false);
      }, deadlineMs);
    });
    const steps = (async () => {
      let ok = true;
      for (const step of [...this.steps].reverse()) {
        current = step.name;
        try {
          await step.run();
          this.logger.info({ step: step.name }, 'stopped');
        } catch (error) {
          ok = false;
          this.logger.error({ err: error, step: step.name }, 'shutdown step failed');
        }
      }
      return ok;
    })();
    try {
      return await Promise.race([steps, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }
}
