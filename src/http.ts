import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { context, type Context as OtelContext, SpanKind } from '@opentelemetry/api';
import { type DocumentNode, type ExecutionArgs, GraphQLError } from 'graphql';
import type { OperationResult } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import type { GraphQLParams } from 'graphql-yoga';
import { type WebSocket, WebSocketServer } from 'ws';
import type { QuireYoga } from './app.ts';
import type { Config } from './config.ts';
import type { Context } from './context.ts';
import { appError, hasCode } from './errors.ts';
import { clientFacingError } from './plugins/error-codes.ts';
import { withoutHttpHints } from './plugins/http-status.ts';
import { logResultErrors, requestId } from './plugins/request-log.ts';
import { endSubscriptionsOf } from './plugins/stream-end.ts';
import { inSpan, tracingActive } from './tracing.ts';

export interface HttpServer {
  server: Server;
  port: number;
  /**
   * Stops accepting, ends live streams, waits for in-flight requests (connections still open
   * after the grace period are cut), then for every operation still executing, its client gone
   * or not: only then may the database pool and Redis close.
   */
  close(): Promise<void>;
}

export const httpOptions = (config: Config, port = config.PORT): HttpOptions => ({
  port,
  host: config.HOST,
  wsInitTimeoutMs: config.WS_INIT_TIMEOUT_MS,
  wsMaxSubscriptions: config.WS_MAX_SUBSCRIPTIONS,
  wsMaxPayloadBytes: config.MAX_BODY_BYTES,
  hideSuggestions: config.NODE_ENV === 'production',
  shutdownGraceMs: config.SHUTDOWN_GRACE_MS,
});

export interface HttpOptions {
  port: number;
  host: string;
  wsInitTimeoutMs: number;
  wsMaxSubscriptions: number;
  /** Larger WebSocket messages close the connection with 1009, as HTTP bodies get 413. */
  wsMaxPayloadBytes: number;
  hideSuggestions: boolean;
  shutdownGraceMs: number;
}

interface EnvelopedRoot {
  execute: (args: ExecutionArgs) => OperationResult;
  subscribe: (args: ExecutionArgs) => OperationResult;
}

/**
 * Serves yoga over HTTP (queries, mutations, SSE subscriptions) and graphql-ws on the same path.
 * Over WebSocket there is no Request: the context gets the connection params instead, and the
 * token is checked once at connection_init (a bad one closes the socket with 4403).
 */
export async function startHttpServer(yoga: QuireYoga, options: HttpOptions): Promise<HttpServer> {
  /**
   * Operations still executing, HTTP or WebSocket. A client that leaves does not stop its
   * operation, and the connection closing is not its end: the close waits for these, so the
   * database pool closed after it never closes under one.
   */
  const executing = new Set<Promise<unknown>>();
  /** `result` counted as executing until it settles; then `onSettled`, if given. */
  const track = <T>(result: T, onSettled?: () => void): T => {
    if (!(result instanceof Promise)) return result;
    executing.add(result);
    const settled = () => {
      executing.delete(result);
      onSettled?.();
    };
    result.then(settled, settled);
    return result;
  };
  const streams = new Set<IncomingMessage>();
  /**
   * WebSocket queries and mutations not answered yet: closing waits for their answers (within the
   * grace period) before it closes the sockets, as HTTP requests get theirs. A client told only
   * "going away" (1001) cannot know whether its mutation ran, and a retry writes it twice.
   */
  const unanswered = new Set<Promise<void>>();
  /** Per socket, by operation id: what marks an execution answered (its result was sent). */
  const answering = new WeakMap<WebSocket, Map<string, () => void>>();
  /** The socket and id of each WebSocket operation, by its context (execute sees only that). */
  const operations = new WeakMap<Context, { socket: WebSocket; id: string }>();
  const awaitAnswer = (contextValue: Context) => {
    const operation = operations.get(contextValue);
    if (!operation) return;
    const pending = answering.get(operation.socket) ?? new Map<string, () => void>();
    answering.set(operation.socket, pending);
    const answer = new Promise<void>((resolve) => pending.set(operation.id, resolve));
    unanswered.add(answer);
    void answer.then(() => unanswered.delete(answer));
  };
  const goingAway = (socket: WebSocket) => socket.close(1001, 'Going away');
  const answered = (socket: WebSocket, id: string) => {
    const pending = answering.get(socket);
    const resolve = pending?.get(id);
    pending?.delete(id);
    // graphql-ws calls onComplete right before it sends `complete`: once that is out, a closing
    // server lets the socket go if nothing else on it awaits an answer.
    setImmediate(() => {
      resolve?.();
      if (closing && !pending?.size) goingAway(socket);
    });
  };
  /**
   * Responses not yet sent, each until its handling settles (its answer is out by then):
   * closing tells their clients not to reuse the connection.
   */
  const unsent = new Set<ServerResponse>();
  let closing = false;
  // One listener doing all the bookkeeping, and no per-response 'close' listener but for
  // streams: each is a closure and an emit on the path every request takes.
  const server = createServer((request, response) => {
    // A keep-alive connection is only closed between requests, and a client may send its next
    // one at that moment; with `connection: close` the client sends none and Node ends the
    // connection once the response is out.
    if (closing) response.setHeader('connection', 'close');
    if (request.headers.accept?.includes('text/event-stream')) {
      streams.add(request);
      response.once('close', () => streams.delete(request));
    }
    const handling = yoga(request, response);
    // Not a promise: yoga answered synchronously, the response is out already.
    if (!(handling instanceof Promise)) return;
    if (!closing) unsent.add(response);
    track(handling, () => unsent.delete(response));
  });

  const toClient = (error: GraphQLError) =>
    withoutHttpHints(clientFacingError(error, { hideSuggestions: options.hideSuggestions }));
  /** As toClient, without yoga's internal `unexpected` marker (its HTTP serializer drops it). */
  const forWebSocket = (error: GraphQLError) => {
    const client = toClient(error);
    if (!('unexpected' in client.extensions)) return client;
    const { unexpected: _internal, ...extensions } = client.extensions;
    return new GraphQLError(client.message, {
      nodes: client.nodes,
      source: client.source,
      positions: client.positions,
      path: client.path,
      originalError: client.originalError,
      extensions,
    });
  };
  // Listening before the WebSocket server attaches: it would report a listen error (a port in
  // use) as "Internal error emitted on the WebSocket server" with stacks; once() rejects with it
  // instead, for the caller to name. No upgrade can arrive before the attach below: it runs in
  // the microtask right after 'listening'.
  server.listen(options.port, options.host);
  await once(server, 'listening');
  const subscriptionsPerSocket = new WeakMap<object, Set<string>>();
  /** The trace context each WebSocket operation's execution runs in (its onSubscribe span). */
  const traceContexts = new WeakMap<Context, OtelContext>();
  const wsServer = new WebSocketServer({
    server,
    path: yoga.graphqlEndpoint,
    maxPayload: options.wsMaxPayloadBytes,
  });
  const envelop = (
    connectionParams: unknown,
    clientAddress: string | undefined,
    params?: GraphQLParams,
  ) => yoga.getEnveloped({ connectionParams, clientAddress, params });
  const wsHandle = useServer(
    {
      connectionInitWaitTimeout: options.wsInitTimeoutMs,
      onConnect: async (ctx) => {
        if (closing) return false;
        let context: Context;
        try {
          context = await envelop(
            ctx.connectionParams,
            ctx.extra.request.socket.remoteAddress,
          ).contextFactory();
        } catch (error) {
          if (hasCode(error, 'UNAUTHENTICATED')) return false;
          throw error;
        }
        if (context.viewer && context.tokenHash) {
          // A revoked token's connection closes on every instance; a role change only ends the
          // subscriptions (useViewerStreams), since each subscribe reads the role again.
          const socket = ctx.extra.socket;
          const unwatch = context.deps.viewerStreams.watch(
            { tokenHash: context.tokenHash, userId: context.viewer.id },
            (change) => {
              if (change.tokenHash) socket.close(4403, 'Forbidden');
            },
          );
          socket.once('close', unwatch);
        }
        return true;
      },
      // graphql-ws calls these outside onSubscribe's span: they run in the context it saved.
      execute: (args) => {
        const contextValue = args.contextValue as Context;
        awaitAnswer(contextValue);
        return context.with(traceContexts.get(contextValue) ?? context.active(), () =>
          track((args.rootValue as EnvelopedRoot).execute(args)),
        );
      },
      subscribe: (args) =>
        context.with(traceContexts.get(args.contextValue as Context) ?? context.active(), () =>
          (args.rootValue as EnvelopedRoot).subscribe(args),
        ),
      // Each WebSocket operation is a trace of its own, as each HTTP request is (see tracing.ts).
      onSubscribe: (ctx, id, payload) =>
        inSpan(
          'graphql-ws subscribe',
          {
            kind: SpanKind.SERVER,
            attributes: payload.operationName
              ? { 'graphql.operation.name': payload.operationName }
              : {},
          },
          async () => {
            const active = subscriptionsPerSocket.get(ctx.extra.socket) ?? new Set<string>();
            subscriptionsPerSocket.set(ctx.extra.socket, active);
            if (active.size >= options.wsMaxSubscriptions) {
              return [
                appError(
                  'TOO_MANY_SUBSCRIPTIONS',
                  `At most ${options.wsMaxSubscriptions} subscriptions per connection`,
                ),
              ];
            }
            // Counted before any await, so that subscribes arriving together see each other; a
            // refused one gives its place back.
            active.add(id);
            const refuse = (errors: readonly GraphQLError[]) => {
              active.delete(id);
              return errors.map(toClient);
            };
            // Parse, persisted-operation and limit errors are thrown, not returned: answer them
            // like validation errors instead of letting graphql-ws close the socket with 4500.
            let params: GraphQLParams;
            try {
              params = await yoga.resolveParams({
                // graphql-ws requires a string: a persisted operation's hash comes with an empty one.
                query: payload.query || undefined,
                variables: payload.variables ?? undefined,
                operationName: payload.operationName ?? undefined,
                extensions: payload.extensions ?? undefined,
              });
            } catch (error) {
              if (error instanceof GraphQLError) return refuse([error]);
              throw error;
            }
            // The params let the query limits check variables before the context is built.
            const { schema, execute, subscribe, contextFactory, parse, validate } = envelop(
              ctx.connectionParams,
              ctx.extra.request.socket.remoteAddress,
              params,
            );
            let document: DocumentNode;
            try {
              document = parse(params.query ?? '');
              const errors = validate(schema, document);
              if (errors.length > 0) return refuse(errors);
            } catch (error) {
              if (error instanceof GraphQLError) return refuse([error]);
              throw error;
            }
            let contextValue: Context;
            try {
              contextValue = await contextFactory();
            } catch (error) {
              // The token was revoked after connection_init: the connection ends as if it had
              // been refused then (graphql-ws would answer the throw with 4500 and log a stack).
              if (!hasCode(error, 'UNAUTHENTICATED')) throw error;
              ctx.extra.socket.close(4403, 'Forbidden');
              return [toClient(error as GraphQLError)];
            }
            // Each operation gets its own id in the logs, as each HTTP request does.
            contextValue.log = contextValue.log.child({ reqId: requestId(undefined), wsId: id });
            if (tracingActive()) traceContexts.set(contextValue, context.active());
            operations.set(contextValue, { socket: ctx.extra.socket, id });
            return {
              schema,
              operationName: payload.operationName,
              document,
              variableValues: payload.variables,
              contextValue,
              rootValue: { execute, subscribe },
            };
          },
        ),
      // Execution results get what yoga's HTTP serializer gives them: a code, no internals.
      onNext: (_ctx, _id, _payload, args, result) => {
        logResultErrors((args.contextValue as Context).log, result.errors);
        if (!result.errors?.length) return;
        return { ...result, errors: result.errors.map(forWebSocket) };
      },
      // Called once the operation's last message was sent: an execution is answered then.
      onComplete: (ctx, id) => {
        subscriptionsPerSocket.get(ctx.extra.socket)?.delete(id);
        answered(ctx.extra.socket, id);
      },
      onError: (ctx, id) => {
        subscriptionsPerSocket.get(ctx.extra.socket)?.delete(id);
        answered(ctx.extra.socket, id);
      },
    },
    wsServer,
  );
  // ws has already closed the socket after a client's protocol error (e.g. 1009 for a message
  // over maxPayload); graphql-ws would console.error each one, so only other errors reach it.
  wsServer.on('connection', (socket) => {
    // A socket that closes answers nothing more (an execution that threw never completes).
    socket.once('close', () => {
      for (const resolve of answering.get(socket)?.values() ?? []) resolve();
      answering.delete(socket);
    });
    const graphqlWsHandlers = socket.listeners('error') as ((error: Error) => void)[];
    socket.removeAllListeners('error');
    socket.on('error', (error: Error & { code?: string }) => {
      if (error.code?.startsWith('WS_ERR_')) return;
      for (const handler of graphqlWsHandlers) handler.call(socket, error);
    });
  });

  const address = server.address();
  return {
    server,
    port: typeof address === 'object' && address ? address.port : options.port,
    async close() {
      closing = true;
      // Stops accepting connections and closes the idle ones (Node's close does both).
      const disconnected = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const response of unsent) {
        if (!response.headersSent) response.setHeader('connection', 'close');
      }
      const graceOver = sleep(options.shutdownGraceMs);
      let graceDone = false;
      void graceOver.then(() => {
        graceDone = true;
      });
      // Live streams never finish on their own: SSE streams end with `event: complete`, WebSocket
      // clients get 1001 (going away); both resume elsewhere with afterEventId. A socket with
      // queries or mutations under way (or sent meanwhile) closes once they are answered.
      for (const request of streams) endSubscriptionsOf(request);
      for (const socket of wsServer.clients) if (!answering.get(socket)?.size) goingAway(socket);
      while (unanswered.size > 0 && !graceDone) {
        await Promise.race([Promise.allSettled(unanswered), graceOver]);
      }
      await wsHandle.dispose();
      const grace = graceOver.then(() => server.closeAllConnections());
      await Promise.race([disconnected, grace]);
      await disconnected;
      // Past the grace period too: a cut connection's operation still runs until it settles
      // (SHUTDOWN_DEADLINE_MS bounds the wait).
      while (executing.size > 0) await Promise.allSettled(executing);
    },
  };
}
