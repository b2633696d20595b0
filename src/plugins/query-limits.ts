import { createComplexityRule } from '@pothos/plugin-complexity';
import {
  type ASTNode,
  type DocumentNode,
  GraphQLError,
  type GraphQLSchema,
  getArgumentValues,
  Kind,
  Lexer,
  NoSchemaIntrospectionCustomRule,
  type SelectionNode,
  Source,
  TokenKind,
  type ValidationRule,
  validate,
  visit,
} from 'graphql';
import type { GraphQLParams, Plugin } from 'graphql-yoga';
import type { Config } from '../config.ts';
import { appError, badInput } from '../errors.ts';
import { countExecutedFields, requestedOperation } from './executed-fields.ts';
import { wrapParseOnce } from './parse-wrapper.ts';

export type QueryLimitsConfig = Pick<
  Config,
  | 'MAX_QUERY_TOKENS'
  | 'MAX_QUERY_ALIASES'
  | 'MAX_QUERY_DEPTH'
  | 'MAX_QUERY_BREADTH'
  | 'MAX_QUERY_COMPLEXITY'
  | 'MAX_PAGE_SIZE'
  | 'DEFAULT_PAGE_SIZE'
>;

const PAGE_SIZE_ARGUMENTS = ['first', 'last'] as const;
/** Limit keys remembered per document as within the limits (then forgotten all at once). */
const PASSED_VARIABLE_SETS = 256;

/**
 * A subscription's root field may not carry `@skip`/`@include` (the GraphQL spec's "Single
 * root field" rule, as graphql-js 17 enforces it): graphql-js 16 crashes on a skipped one.
 */
const subscriptionRootDirectivesRule: ValidationRule = (context) => {
  const conditional = (selections: readonly SelectionNode[], seen: Set<string>): boolean =>
    selections.some((selection) => {
      if (selection.directives?.some((directive) => CONDITIONS.has(directive.name.value)))
        return true;
      if (selection.kind === Kind.INLINE_FRAGMENT)
        return conditional(selection.selectionSet.selections, seen);
      if (selection.kind !== Kind.FRAGMENT_SPREAD || seen.has(selection.name.value)) return false;
      seen.add(selection.name.value);
      const fragment = context.getFragment(selection.name.value);
      return fragment ? conditional(fragment.selectionSet.selections, seen) : false;
    });
  return {
    OperationDefinition(node) {
      if (node.operation !== 'subscription') return;
      if (conditional(node.selectionSet.selections, new Set())) {
        context.reportError(
          appError(
            'GRAPHQL_VALIDATION_FAILED',
            "A subscription's root field cannot be @skip or @include",
            {},
            { nodes: [node] },
          ),
        );
      }
    },
  };
};
const CONDITIONS = new Set(['skip', 'include']);

/**
 * Page sizes, from literals and the request's variables: `first`/`last` within
 * [0, MAX_PAGE_SIZE]. Cursor shapes are checked with the other argument values
 * (src/plugins/argument-values.ts), which runs first.
 */
function pageSizeRule(maxPageSize: number, request: GraphQLParams): ValidationRule {
  return (context) => {
    // Bad variables are reported by the complexity rule, which coerces them too.
    const requested = requestedOperation(
      context.getSchema(),
      context.getDocument(),
      request.operationName,
      request.variables,
    );
    if (!requested) return {};
    const { operation, variables } = requested;
    return {
      OperationDefinition: (node) => (node === operation ? undefined : false),
      Field(node) {
        const field = context.getFieldDef();
        if (!field?.args.some((arg) => arg.name === 'first' || arg.name === 'last')) return;
        let args: Record<string, unknown>;
        try {
          args = getArgumentValues(field, node, variables);
        } catch (error) {
          context.reportError(badInput((error as Error).message));
          return;
        }
        for (const argument of PAGE_SIZE_ARGUMENTS) {
          const size = args[argument];
          if (typeof size === 'number' && (size < 0 || size > maxPageSize)) {
            context.reportError(
              badInput(`\`${argument}\` must be between 0 and ${maxPageSize}`, { argument }),
            );
          }
        }
      },
    };
  };
}

function complexityRule(config: QueryLimitsConfig, request: GraphQLParams): ValidationRule {
  const max = { depth: config.MAX_QUERY_DEPTH, complexity: config.MAX_QUERY_COMPLEXITY };
  return createComplexityRule({
    // The fields' complexity functions (src/builder.ts) read only `config` from the context.
    context: { config },
    variableValues: request.variables ?? {},
    operationName: request.operationName,
    validate: (result, reportError) => {
      // Breadth is counted on the executed selection instead (executedFieldsError).
      const limit = (['depth', 'complexity'] as const).find((kind) => result[kind] > max[kind]);
      if (!limit) return;
      reportError(
        appError(
          'QUERY_TOO_COMPLEX',
          `Query ${limit} ${result[limit]} exceeds the limit of ${max[limit]}`,
          { limit },
        ),
      );
    },
  });
}

/**
 * The first limit the operation breaks (depth, breadth, aliases, cost, page size), or a
 * variable or ID that cannot be coerced. These depend on the variables, so they cannot be cached validation
 * rules: yoga caches validation results per document.
 */
function operationLimitError(
  schema: GraphQLSchema,
  document: DocumentNode,
  request: GraphQLParams,
  config: QueryLimitsConfig,
): GraphQLError | undefined {
  const [error] = validate(schema, document, [
    complexityRule(config, request),
    pageSizeRule(config.MAX_PAGE_SIZE, request),
  ]);
  if (error) {
    if (error.extensions.code) return error;
    // Variables that do not coerce, IDs that do not decode, an unknown operation name.
    return badInput(error.message);
  }
  return executedFieldsError(schema, document, request, config);
}

/**
 * Breadth and aliases of what will execute: fragments count each time they are spread,
 * `@skip`/`@include` with this request's variables (src/plugins/executed-fields.ts). Runs after
 * the cost limit, so the selection it walks is already bounded.
 */
function executedFieldsError(
  schema: GraphQLSchema,
  document: DocumentNode,
  request: GraphQLParams,
  config: QueryLimitsConfig,
): GraphQLError | undefined {
  const requested = requestedOperation(schema, document, request.operationName, request.variables);
  if (!requested) return undefined;
  const executed = countExecutedFields(
    schema,
    document,
    requested.operation,
    requested.variables,
    config.MAX_QUERY_BREADTH,
  );
  if (executed.aliases > config.MAX_QUERY_ALIASES) {
    return appError(
      'QUERY_TOO_COMPLEX',
      `More than ${config.MAX_QUERY_ALIASES} aliases in one operation`,
      { limit: 'aliases' },
    );
  }
  if (executed.fields > config.MAX_QUERY_BREADTH) {
    return appError(
      'QUERY_TOO_COMPLEX',
      `Query breadth ${Number.isFinite(executed.fields) ? `${executed.fields} ` : ''}exceeds the limit of ${config.MAX_QUERY_BREADTH}`,
      { limit: 'breadth' },
    );
  }
  return undefined;
}

/**
 * Whether `error`, thrown by parsing `source` with `maxTokens`, is the token limit rather than a
 * syntax error: graphql-js raises the limit at the start of token `maxTokens + 1`, as it lexes
 * it, before the grammar looks at it; a syntax error comes at an earlier token, or from the
 * lexer, which fails here too. Counts at most that many tokens, on the error path only.
 */
function hitTokenLimit(source: string | Source, error: unknown, maxTokens: number): boolean {
  const position = error instanceof GraphQLError ? error.positions?.[0] : undefined;
  if (position === undefined) return false;
  const lexer = new Lexer(typeof source === 'string' ? new Source(source) : source);
  try {
    for (let count = 1; count <= maxTokens + 1; count++) {
      const token = lexer.advance();
      if (token.kind === TokenKind.EOF) return false;
      if (count === maxTokens + 1) return token.start === position;
    }
  } catch {
    // A lexical error before the limit: the parser met it too.
  }
  return false;
}

/**
 * The variables a document's limits read by value: page sizes (`first`/`last`, which the cost
 * function in src/builder.ts multiplies by) and `@skip`/`@include` conditions (the executed
 * breadth and aliases). Any other variable reaches the limits only through graphql-js's argument
 * coercion, which asks whether it was given and whether it is null.
 */
function limitVariables(document: DocumentNode): ReadonlySet<string> {
  const names = new Set<string>();
  const collect = (node: ASTNode) =>
    visit(node, {
      Variable(variable) {
        names.add(variable.name.value);
      },
    });
  visit(document, {
    VariableDefinition: () => false,
    Argument(argument) {
      if ((PAGE_SIZE_ARGUMENTS as readonly string[]).includes(argument.name.value)) {
        collect(argument.value);
      }
    },
    Directive(directive) {
      collect(directive);
      return false;
    },
  });
  return names;
}

/**
 * What decides an operation's limits for this request: its name, the values of the variables
 * the limits read, and of every other variable only whether it is given and whether it is null
 * (all coerced as graphql-js will coerce them). Undefined when the variables do not coerce.
 */
function limitKey(
  schema: GraphQLSchema,
  document: DocumentNode,
  request: GraphQLParams,
  byValue: ReadonlySet<string>,
): string | undefined {
  const requested = requestedOperation(schema, document, request.operationName, request.variables);
  if (!requested) return undefined;
  const { operation, variables } = requested;
  const parts: unknown[] = [request.operationName ?? ''];
  for (const definition of operation.variableDefinitions ?? []) {
    const name = definition.variable.name.value;
    const value = variables[name];
    if (!Object.hasOwn(variables, name)) parts.push(0);
    else if (value === undefined) parts.push(1);
    else if (value === null) parts.push(2);
    else parts.push(byValue.has(name) ? { value } : 3);
  }
  return JSON.stringify(parts);
}

/**
 * Every limit on a document is checked while parsing and validating, before yoga builds the
 * context (which looks the bearer token up in the database): tokens (a parser option in
 * graphql 16), introspection and conditional subscription roots as cached rules; depth, cost,
 * page sizes, then breadth and aliases of the executed selection after validation, against this
 * request's operation and variables, thrown so that yoga does not cache them.
 * Needs the request's params in the enveloped context (yoga puts them there; src/http.ts does
 * for graphql-ws).
 */
export function useQueryLimits(options: {
  config: QueryLimitsConfig;
  introspection: boolean;
}): Plugin {
  const { config } = options;
  // Documents come from yoga's parse cache, so a client repeating an operation repeats the same
  // DocumentNode: remember which limit keys passed instead of walking the document again. A
  // mutation with a new title per request keeps its key; a new page size is a new key.
  const passed = new WeakMap<DocumentNode, { byValue: ReadonlySet<string>; keys: Set<string> }>();
  const checkLimits = (schema: GraphQLSchema, document: DocumentNode, request: GraphQLParams) => {
    let seen = passed.get(document);
    if (!seen) {
      seen = { byValue: limitVariables(document), keys: new Set() };
      passed.set(document, seen);
    }
    const key = limitKey(schema, document, request, seen.byValue);
    if (key !== undefined && seen.keys.has(key)) return;
    const error = operationLimitError(schema, document, request, config);
    if (error) throw error;
    if (key === undefined) return;
    if (seen.keys.size >= PASSED_VARIABLE_SETS) seen.keys.clear();
    seen.keys.add(key);
  };
  const limitedParse = wrapParseOnce((parseFn) => (source, parseOptions) => {
    try {
      return parseFn(source, { ...parseOptions, maxTokens: config.MAX_QUERY_TOKENS });
    } catch (error) {
      if (hitTokenLimit(source, error, config.MAX_QUERY_TOKENS)) {
        throw appError(
          'QUERY_TOO_COMPLEX',
          `Documents are limited to ${config.MAX_QUERY_TOKENS} tokens`,
          { limit: 'tokens', http: { status: 400 } },
        );
      }
      throw error;
    }
  });
  // The validation results by document, for the rules every request runs (yoga's own validation
  // cache is off in src/app.ts): yoga's keyed them by the joined names of the ~28 rules, a string
  // built on every request, and these rules were added to every request's list even when the
  // cache answered.
  const validated = new WeakMap<DocumentNode, readonly GraphQLError[]>();
  return {
    onParse({ parseFn, setParseFn }) {
      setParseFn(limitedParse(parseFn));
    },
    onValidate({ addValidationRule, params, context, setResult }) {
      const request = (context as { params?: GraphQLParams }).params;
      if (!request) throw new Error('useQueryLimits needs the request params in the context');
      const document = params.documentAST;
      const known = validated.get(document);
      if (known) setResult(known);
      else {
        addValidationRule(subscriptionRootDirectivesRule);
        if (!options.introspection) addValidationRule(NoSchemaIntrospectionCustomRule);
      }
      return ({ valid, result }) => {
        if (!known) validated.set(document, result as readonly GraphQLError[]);
        if (valid) checkLimits(params.schema, document, request);
      };
    },
  };
}
