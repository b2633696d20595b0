import {
  GraphQLError,
  NoSchemaIntrospectionCustomRule,
  type ValidationContext,
  type ValidationRule,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';

function maxAliasesRule(max: number): ValidationRule {
  return (context: ValidationContext) => {
    let aliases = 0;
    return {
      Field(node) {
        if (!node.alias) return;
        aliases += 1;
        if (aliases === max + 1) {
          context.reportError(
            new GraphQLError(`More than ${max} aliases in one document`, {
              nodes: [node],
              extensions: { code: 'QUERY_TOO_COMPLEX', limit: 'aliases' },
            }),
          );
        }
      },
    };
  };
}

/**
 * Cheap limits checked while parsing and validating, before any resolver or SQL: tokens (a
 * parser option in graphql 16), aliases, and introspection when disabled. Depth, breadth and
 * cost are checked by the Pothos complexity plugin before the root fields resolve.
 */
export function useQueryLimits(options: {
  maxTokens: number;
  maxAliases: number;
  introspection: boolean;
}): Plugin {
  return {
    onParse({ parseFn, setParseFn }) {
      setParseFn((source, parseOptions) => {
        try {
          return parseFn(source, { ...parseOptions, maxTokens: options.maxTokens });
        } catch (error) {
          if (error instanceof GraphQLError && error.message.includes('tokens')) {
            throw new GraphQLError(`Documents are limited to ${options.maxTokens} tokens`, {
              extensions: { code: 'QUERY_TOO_COMPLEX', limit: 'tokens', http: { status: 400 } },
            });
          }
          throw error;
        }
      });
    },
    onValidate({ addValidationRule }) {
      addValidationRule(maxAliasesRule(options.maxAliases));
      if (!options.introspection) addValidationRule(NoSchemaIntrospectionCustomRule);
    },
  };
}
