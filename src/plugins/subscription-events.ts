import { createSourceEventStream, type DocumentNode, type ExecutionResult, execute } from 'graphql';
import { isAsyncIterable, makeSubscribe, type Plugin } from 'graphql-yoga';

/** A number per parsed document: yoga's parse cache hands every request of one text the same node. */
const documentIds = new WeakMap<DocumentNode, number>();
let nextDocumentId = 0;
const documentId = (document: DocumentNode) => {
  let id = documentIds.get(document);
  if (id === undefined) {
    id = nextDocumentId++;
    documentIds.set(document, id);
  }
  return id;
};

/**
 * `source` with each event replaced by `map(event)`: one `then` per event. yoga's
 * mapAsyncIterator does the same through several promise helpers per event, which a thousand
 * streams of one run pay a thousand times.
 */
function mapEvents<T, R>(
  source: AsyncIterable<T>,
  map: (event: T) => Promise<R>,
): AsyncIterableIterator<R> {
  const iterator = source[Symbol.asyncIterator]();
  const done = (value?: unknown) => ({ value: value as R, done: true as const });
  return {
    next: () =>
      iterator
        .next()
        .then((next) =>
          next.done ? done() : map(next.value).then((value) => ({ value, done: false as const })),
        ),
    return: (value?: unknown) => Promise.resolve(iterator.return?.(value)).then(() => done(value)),
    throw: (error?: unknown) =>
      iterator.throw ? iterator.throw(error).then(() => done()) : Promise.reject(error),
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

/**
 * Executes each subscription event once per distinct (event, document, operation, variables,
 * viewer scope) and hands the same result to every subscriber of that key, each event with a
 * fresh context (`contextPartial`, e.g. new DataLoaders, as envelop's
 * useExtendContextValuePerExecuteSubscriptionEvent does). Fan-out executed and serialized the same
 * event once per subscriber; now a thousand subscribers of one run cost one execution.
 *
 * Sharing is by the event's identity: the live feed hands one parsed message to all the streams
 * of a topic, while rows a stream reads itself (replay, catch-up) are its own objects and execute
 * on their own. The shared execution runs with the context of the first subscriber of its key;
 * the scope (`scopeOf`, the same viewer and role) is what makes that context interchangeable, as
 * for the response cache: resolvers below a subscription field must depend on the event, the
 * arguments and the viewer only.
 */
export function useSharedSubscriptionEvents<Ctx extends object>(options: {
  contextPartial: (context: Ctx) => Partial<Ctx>;
  scopeOf: (context: Ctx) => string;
  /** Told of each result handed to a subscriber: executed for it, or shared from another. */
  onResult?: (outcome: 'executed' | 'shared') => void;
}): Plugin<Ctx> {
  /** Per event, the results by key; an event nobody holds any more is collected with them. */
  const results = new WeakMap<object, Map<string, Promise<ExecutionResult>>>();
  return {
    onSubscribe({ setSubscribeFn }) {
      setSubscribeFn(
        makeSubscribe((args) => {
          const contextValue = args.contextValue as Ctx;
          const key = `${documentId(args.document)}\u0000${args.operationName ?? ''}\u0000${JSON.stringify(args.variableValues ?? {})}\u0000${options.scopeOf(contextValue)}`;
          const run = (payload: unknown) =>
            Promise.resolve(
              execute({
                ...args,
                rootValue: payload,
                contextValue: { ...contextValue, ...options.contextPartial(contextValue) },
              }),
            );
          const executeEvent = (payload: unknown) => {
            if (typeof payload !== 'object' || payload === null) {
              options.onResult?.('executed');
              return run(payload);
            }
            let byKey = results.get(payload);
            if (!byKey) {
              byKey = new Map();
              results.set(payload, byKey);
            }
            let result = byKey.get(key);
            if (result) options.onResult?.('shared');
            else {
              options.onResult?.('executed');
              result = run(payload);
              byKey.set(key, result);
            }
            return result;
          };
          return Promise.resolve(
            createSourceEventStream(
              args.schema,
              args.document,
              args.rootValue,
              contextValue,
              args.variableValues ?? undefined,
              args.operationName,
              args.subscribeFieldResolver,
            ),
          ).then((stream) => (isAsyncIterable(stream) ? mapEvents(stream, executeEvent) : stream));
        }),
      );
    },
  };
}
