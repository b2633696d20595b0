import { GraphQLError, getOperationAST, Kind, type SelectionSetNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Context } from '../context.ts';

/** Root mutation fields, through inline fragments, so aliasing ten mutations costs ten calls. */
function countRootFields(selectionSet: SelectionSetNode): number {
  return selectionSet.selections.reduce(
    (count, selection) =>
      count +
      (selection.kind === Kind.FIELD
        ? 1
        : selection.kind === Kind.INLINE_FRAGMENT
          ? countRootFields(selection.selectionSet)
          : 1),
    0,
  );
}

/** Charges every mutation field against the client's `mutation` budget before anything runs. */
export function useMutationRateLimit(): Plugin<Context> {
  return {
    async onExecute({ args, setResultAndStopExecution }) {
      const operation = getOperationAST(args.document, args.operationName);
      if (operation?.operation !== 'mutation') return;
      const ctx = args.contextValue as Context;
      try {
        await ctx.deps.rateLimiter.consume(
          ctx.clientKey,
          'mutation',
          countRootFields(operation.selectionSet),
        );
      } catch (error) {
        if (!(error instanceof GraphQLError)) throw error;
        setResultAndStopExecution({ data: null, errors: [error] });
      }
    },
  };
}
