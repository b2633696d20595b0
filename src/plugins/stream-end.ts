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
          let end = () => {};
          const ended = new Promise<IteratorResult<never>>((resolve) => {
            end = () => {
              ends.delete(end);
              resolve({ done: true, value: undefined });
              void Promise.resolve(source.return?.()).catch(() => {});
            };
          });
          ends.add(end);
          setResult({
            next: () => Promise.race([source.next(), ended]),
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
