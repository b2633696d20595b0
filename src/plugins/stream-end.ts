import type { IncomingMessage } from 'node:http';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';

/** How to end the subscription an HTTP (SSE) request is streaming, while it streams. */
const enders = new WeakMap<IncomingMessage, Set<() => void>>();

/**
 * Ends the subscriptions `request` streams as if their source had finished, so yoga closes each
 * SSE stream with an `event: complete` (a cut connection would look like a network failure to
 * the client). Used by the HTTP server's shutdown.
 */
export function endSubscriptionsOf(request: IncomingMessage): void {
  for (const end of enders.get(request) ?? []) end();
}

/** Makes each subscription over HTTP endable by `endSubscriptionsOf` its request. */
export function useEndableSubscriptions(): Plugin<{ req?: IncomingMessage }> {
  return {
    onSubscribe({ args }) {
      const request = (args.contextValue as { req?: IncomingMessage }).req;
      if (!request) return;
      return {
        onSubscribeResult({ result, setResult }) {
          if (!isAsyncIterable(result)) return;
          const source = result[Symbol.asyncIterator]();
          const ends = enders.get(request) ?? new Set<() => void>();
          enders.set(request, ends);
          let ended = false;
          // The `next()` waiting for the source, settled here too: ending must not wait for a
          // source's next event. Passed through otherwise (no race per event).
          let pending: ((result: IteratorResult<never>) => void) | null = null;
          const end = () => {
            if (ended) return;
            ended = true;
            ends.delete(end);
            pending?.({ done: true, value: undefined });
            pending = null;
            void Promise.resolve(source.return?.()).catch(() => {});
          };
          ends.add(end);
          setResult({
            next: () => {
              if (ended) return Promise.resolve({ done: true, value: undefined });
              return new Promise((resolve, reject) => {
                pending = resolve;
                source.next().then((next) => {
                  if (pending !== resolve) return;
                  pending = null;
                  resolve(next);
                }, reject);
              });
            },
            return: async (value?: unknown) => {
              end();
              return { done: true, value };
            },
            [Symbol.asyncIterator]() {
              return this;
            },
          } as typeof result);
        },
      };
    },
  };
}
