import type { Logger } from './logger.ts';

/** Ordered shutdown: steps run in reverse order of registration, each awaited, failures logged. */
export class ShutdownSequence {
  private readonly steps: { name: string; run: () => Promise<void> }[] = [];
  private running: Promise<boolean> | undefined;

  constructor(private readonly logger: Logger) {}

  add(name: string, run: () => Promise<void>): void {
    this.steps.push({ name, run });
  }

  run(): Promise<boolean> {
    this.running ??= (async () => {
      let ok = true;
      for (const step of [...this.steps].reverse()) {
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
    return this.running;
  }
}
