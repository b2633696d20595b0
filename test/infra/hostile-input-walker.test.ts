import { readFileSync } from 'node:fs';
import {
  buildSchema,
  type GraphQLArgument,
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLNamedType,
  type GraphQLObjectType,
  getNamedType,
  getNullableType,
  isEnumType,
  isInputObjectType,
  isInterfaceType,
  isLeafType,
  isListType,
  isNonNullType,
  isObjectType,
} from 'graphql';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type HttpServer, httpOptions, startHttpServer } from '../../src/http.ts';
import { schema } from '../../src/schema.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { type StreamedResult, wsSubscribe } from '../helpers/clients.ts';
import { createUser, globalId, type TestUser } from '../helpers/factories.ts';

/**
 * Reads the schema and, for every field argument and input field reachable from Query, Mutation
 * and Subscription, sends values of its type that JavaScript accepts and Postgres does not
 * (NUL, unpaired surrogates, 1 MB strings, ids and integers past their ranges, impossible dates,
 * forged cursors, ids of unknown types) through the real server, as an admin and anonymously.
 * No answer may be INTERNAL_SERVER_ERROR or a 5xx, every error carries a code, and the server
 * logs nothing at error level. Arguments added to the schema are walked without anyone listing
 * them; one the walker cannot reach fails the test.
 */

const ONE_MEGABYTE = 'x'.repeat(1 << 20);
const STREAM_WAIT_MS = 400;

let app: TestApp;
let http: HttpServer;
let admin: TestUser;
const logLines: string[] = [];
/** A valid global id per node type, from objects created through the API. */
const ids: Record<string, string> = {};
/** A real cursor of each connection field (`Type.field`), to forge from. */
const cursors = new Map<string, string>();

beforeAll(async () => {
  const logger = pino({ level: 'warn' }, { write: (line: string) => logLines.push(line) });
  app = await startTestApp(
    {
      // The 1 MB strings must reach the server rather than stop at the body limit.
      MAX_BODY_BYTES: String(8 << 20),
      RATE_LIMIT_MUTATIONS: '1000000',
      RATE_LIMIT_START_PIPELINE: '1000000',
      RATE_LIMIT_SEARCH: '1000000',
      RESPONSE_CACHE: 'off',
    },
    undefined,
    logger,
  );
  http = await startHttpServer(app.yoga, httpOptions(app.deps.config, 0));
  admin = await createUser(app.deps.db, 'ADMIN');
  const as = { token: admin.token };
  const created = await app.gql(
    `mutation {
      createPost(input: { title: "Walker pipelines", body: "Pipelines and GraphQL, walked.",
        status: PUBLISHED, tags: ["walker-tag"] }) { post { id tags { id } } }
    }`,
    {},
    as,
  );
  const post = created.data!.createPost.post;
  ids.Post = post.id;
  ids.Tag = post.tags[0].id;
  ids.User = admin.globalId;
  const comment = await app.gql(
    'mutation($p: ID!) { addComment(input: { postId: $p, body: "A comment" }) { comment { id } } }',
    { p: ids.Post },
    as,
  );
  ids.Comment = comment.data!.addComment.comment.id;
  const run = await app.gql(
    'mutation($p: ID!) { startPipeline(input: { postId: $p }) { pipelineRun { id events(first: 1) { edges { node { id } } } } } }',
    { p: ids.Post },
    as,
  );
  ids.PipelineRun = run.data!.startPipeline.pipelineRun.id;
  ids.PipelineEvent = run.data!.startPipeline.pipelineRun.events.edges[0].node.id;
  const token = await app.gql(
    'mutation { createApiToken(input: { name: "walker" }) { apiToken { id } } }',
    {},
    as,
  );
  ids.ApiToken = token.data!.createApiToken.apiToken.id;
  for (const [key, value] of Object.entries(ids)) expect(value, key).toBeTruthy();
}, 60_000);

afterAll(async () => {
  await http?.close();
  await app?.close();
});

type IdRule = false | true | readonly string[];

function idRuleOf(extensions: Readonly<Record<string, unknown>> | undefined): IdRule {
  const relay = extensions as
    | { isRelayGlobalID?: boolean; relayGlobalIDFor?: { typename: string }[] | null }
    | undefined;
  if (!relay?.isRelayGlobalID) return false;
  return relay.relayGlobalIDFor?.map((entry) => entry.typename) ?? true;
}

/** A value the argument accepts, to fill the arguments not under test. */
function validValue(type: GraphQLInputType, coordinate: string, idRule: IdRule): unknown {
  const nullable = getNullableType(type);
  if (isListType(nullable)) return [validValue(nullable.ofType, coordinate, idRule)];
  if (isInputObjectType(nullable)) {
    return Object.fromEntries(
      Object.values(nullable.getFields())
        .filter((field) => isNonNullType(field.type) && field.defaultValue === undefined)
        .map((field) => [
          field.name,
          validValue(field.type, `${nullable.name}.${field.name}`, idRuleOf(field.extensions)),
        ]),
    );
  }
  if (isEnumType(nullable)) return nullable.getValues()[0]!.value;
  switch (nullable.name) {
    case 'ID':
      if (idRule === false) return ids.ApiToken;
      return ids[idRule === true ? 'Post' : idRule[0]!];
    case 'Int':
      return 1;
    case 'Float':
      return 1;
    case 'Boolean':
      return false;
    case 'DateTime':
      return new Date().toISOString();
    default:
      return coordinate === 'Query.searchPosts(query)' ? 'pipelines' : 'walker';
  }
}

const forgeValues: unknown[] = [
  1e19,
  '9999999999999999999',
  2 ** 31,
  -(2 ** 31) - 1,
  1.5,
  1e300,
  -1e-300,
  '2026-02-30 00:00:00+00',
  '0000-01-01 00:00:00+00',
  '9999999-01-01 00:00:00+00',
  '2026-13-01T00:00:00Z',
  'a\u0000b',
  '\ud800',
  'x'.repeat(2000),
  null,
  {},
  [],
  true,
];

/** A real cursor with each of its parts in turn replaced by an out-of-range or wrong-typed value. */
function forgedCursors(real: string): string[] {
  const parts = JSON.parse(Buffer.from(real, 'base64url').toString('utf8')) as unknown[];
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const forged: string[] = [encode([...parts, 1]), encode(parts.slice(1)), encode({})];
  for (let index = 0; index < parts.length; index += 1) {
    for (const value of forgeValues) {
      const copy = [...parts];
      copy[index] = value;
      forged.push(encode(copy));
    }
  }
  return forged;
}

const hostileStrings = [
  'a\u0000b',
  '\u0000',
  '\ud800',
  'x\udc00y',
  ONE_MEGABYTE,
  '9223372036854775808',
];
const hostileIds = [
  ...hostileStrings,
  globalId('Post', '9223372036854775808'),
  globalId('Post', '99999999999999999999'),
  globalId('Post', '0'),
  globalId('Post', '-1'),
  globalId('Post', 'a\u0000b'),
  globalId('Nope', '1'),
  globalId('Tag', '9223372036854775807'),
  'garbage',
  2 ** 63,
  1e21,
];
const hostileByScalar: Record<string, unknown[]> = {
  ID: hostileIds,
  String: hostileStrings,
  Int: [2 ** 31, -(2 ** 31) - 1, -1, 0, 2 ** 31 - 1, 1.5, '1'],
  Float: [1e308, -1e308, 5e-324, 'NaN'],
  Boolean: ['yes', 0],
  DateTime: [
    '2026-02-30T00:00:00Z',
    '0000-01-01T00:00:00Z',
    '9999999-01-01T00:00:00Z',
    '2026-01-01T00:00:00+99:00',
    'a\u0000b',
  ],
};

interface Case {
  /** The argument or input field this value is aimed at (`Type.field(arg)` or `Input.field`). */
  covers: string;
  value: unknown;
}

/** Each hostile value at each leaf position of the argument, inside otherwise valid values. */
function hostileCases(
  type: GraphQLInputType,
  covers: string,
  idRule: IdRule,
  cursorOf: string | null,
): Case[] {
  const nullable = getNullableType(type);
  if (isListType(nullable)) {
    const valid = validValue(nullable.ofType, covers, idRule);
    return hostileCases(nullable.ofType, covers, idRule, null).map((item) => ({
      covers: item.covers,
      value: [valid, item.value],
    }));
  }
  if (isInputObjectType(nullable)) {
    const base = validValue(nullable, covers, idRule) as Record<string, unknown>;
    const cases: Case[] = [
      { covers, value: 'not an object' },
      { covers, value: {} },
    ];
    for (const field of Object.values(nullable.getFields())) {
      const fieldCoordinate = `${nullable.name}.${field.name}`;
      for (const item of hostileCases(
        field.type,
        fieldCoordinate,
        idRuleOf(field.extensions),
        null,
      )) {
        cases.push({ covers: item.covers, value: { ...base, [field.name]: item.value } });
      }
    }
    return cases;
  }
  if (isEnumType(nullable)) return ['NOPE', 'nope', 1].map((value) => ({ covers, value }));
  const values = [...(hostileByScalar[nullable.name] ?? hostileStrings)];
  if (cursorOf) {
    const real = cursors.get(cursorOf);
    if (!real) throw new Error(`No real cursor of ${cursorOf} to forge from`);
    values.push(...forgedCursors(real));
  }
  return values.map((value) => ({ covers, value }));
}

interface Target {
  parent: GraphQLObjectType;
  field: GraphQLField<unknown, unknown>;
  operation: 'query' | 'mutation' | 'subscription';
}

/** Every field with arguments on a type reachable from the roots. */
function targets(): Target[] {
  const roots = [
    [schema.getQueryType()!, 'query'],
    [schema.getMutationType()!, 'mutation'],
    [schema.getSubscriptionType()!, 'subscription'],
  ] as const;
  const seen = new Set<GraphQLNamedType>();
  const found: Target[] = [];
  const visit = (type: GraphQLNamedType, operation: Target['operation']) => {
    if (seen.has(type)) return;
    seen.add(type);
    const objects = isInterfaceType(type)
      ? schema.getPossibleTypes(type)
      : isObjectType(type)
        ? [type]
        : [];
    for (const object of objects) {
      if (object !== type) visit(object, 'query');
      if (!isObjectType(object)) continue;
      for (const field of Object.values(object.getFields())) {
        if (field.args.length > 0) found.push({ parent: object, field, operation });
        visit(getNamedType(field.type), 'query');
      }
    }
  };
  for (const [root, operation] of roots) visit(root, operation);
  return found;
}

const isRoot = (type: GraphQLObjectType) =>
  type === schema.getQueryType() ||
  type === schema.getMutationType() ||
  type === schema.getSubscriptionType();

/** The document that reaches `target` with every argument as a variable (a node's through `node`). */
function documentFor(target: Target): string {
  const { parent, field, operation } = target;
  const definitions = field.args.map((arg) => `$${arg.name}: ${String(arg.type)}`);
  const call = `${field.name}(${field.args.map((arg) => `${arg.name}: $${arg.name}`).join(', ')})`;
  const selection = isLeafType(getNamedType(field.type)) ? '' : ' { __typename }';
  if (isRoot(parent)) {
    return `${operation} Walk(${definitions.join(', ')}) { ${call}${selection} }`;
  }
  if (!parent.getInterfaces().some((node) => node.name === 'Node') || !ids[parent.name]) {
    throw new Error(`The walker cannot reach ${parent.name}.${field.name}: add a way to reach it`);
  }
  return `query Walk($nodeId: ID!, ${definitions.join(', ')}) { node(id: $nodeId) { ... on ${parent.name} { ${call}${selection} } } }`;
}

const isConnection = (field: GraphQLField<unknown, unknown>) =>
  field.args.some((arg) => arg.name === 'after') &&
  isObjectType(getNamedType(field.type)) &&
  'edges' in (getNamedType(field.type) as GraphQLObjectType).getFields();

function validVariables(target: Target): Record<string, unknown> {
  const variables: Record<string, unknown> = isRoot(target.parent)
    ? {}
    : { nodeId: ids[target.parent.name] };
  for (const arg of target.field.args) {
    if (isNonNullType(arg.type) || arg.name === 'first') {
      variables[arg.name] = validValue(
        arg.type,
        `${target.parent.name}.${target.field.name}(${arg.name})`,
        idRuleOf(arg.extensions),
      );
    }
  }
  return variables;
}

interface Outcome {
  status: number;
  errors: { message: string; extensions?: Record<string, unknown> }[];
}

async function postJson(query: string, variables: unknown, token?: string): Promise<Outcome> {
  const response = await app.yoga.fetch('http://quire.test/graphql', {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ query, variables }),
  });
  const text = await response.text();
  return { status: response.status, errors: JSON.parse(text).errors ?? [] };
}

async function getQuery(query: string, variables: unknown, token?: string): Promise<Outcome> {
  const search = new URLSearchParams({ query, variables: JSON.stringify(variables) });
  const response = await app.yoga.fetch(`http://quire.test/graphql?${search}`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  return { status: response.status, errors: JSON.parse(await response.text()).errors ?? [] };
}

/** The first SSE result (or none within STREAM_WAIT_MS: the subscription was accepted). */
async function sse(query: string, variables: unknown, token?: string): Promise<Outcome> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), STREAM_WAIT_MS);
  try {
    const response = await app.yoga.fetch('http://quire.test/graphql', {
      method: 'POST',
      headers: {
        accept: 'text/event-stream',
        'content-type': 'application/json',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify({ query, variables }),
      signal: controller.signal,
    });
    if (!response.headers.get('content-type')?.includes('text/event-stream')) {
      return { status: response.status, errors: JSON.parse(await response.text()).errors ?? [] };
    }
    let text = '';
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        text += Buffer.from(chunk).toString('utf8');
        if (/^data: \{/m.test(text)) break;
      }
    } catch {
      // Aborted: nothing within the wait, the subscription is live.
    }
    const data = /^data: (\{.*)$/m.exec(text)?.[1];
    return {
      status: response.status,
      errors: data ? ((JSON.parse(data) as StreamedResult).errors ?? []) : [],
    };
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

async function ws(query: string, variables: unknown, token?: string): Promise<Outcome> {
  const subscription = wsSubscribe(
    `ws://127.0.0.1:${http.port}/graphql`,
    query,
    variables as Record<string, unknown>,
    token ? { token } : {},
  );
  const timeout = new Promise<null>((resolve) => setTimeout(() => resolve(null), STREAM_WAIT_MS));
  try {
    const first = await Promise.race([
      subscription.next().then(
        (result) => (result.done ? null : result.value),
        (error: unknown) => ({
          errors: Array.isArray(error)
            ? (error as StreamedResult['errors'])
            : [{ message: String(error), extensions: { code: 'WS_CLOSED' } }],
        }),
      ),
      timeout,
    ]);
    return { status: 200, errors: first?.errors ?? [] };
  } finally {
    await subscription.dispose();
  }
}

/** Every argument and input field schema.graphql declares, as `Type.field(arg)` / `Input.field`. */
function declaredArguments(): string[] {
  const printed = buildSchema(
    readFileSync(new URL('../../schema.graphql', import.meta.url), 'utf8'),
  );
  const coordinates: string[] = [];
  for (const type of Object.values(printed.getTypeMap())) {
    if (type.name.startsWith('__')) continue;
    if (isObjectType(type) || isInterfaceType(type)) {
      if (isInterfaceType(type)) continue;
      for (const field of Object.values(type.getFields())) {
        for (const arg of field.args) coordinates.push(`${type.name}.${field.name}(${arg.name})`);
      }
    }
    if (isInputObjectType(type)) {
      for (const field of Object.values(type.getFields()))
        coordinates.push(`${type.name}.${field.name}`);
    }
  }
  return coordinates.sort();
}

const describeValue = (value: unknown) => {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 80)}… (${text.length} chars)` : text;
};

it('no hostile argument value reaches Postgres, answers INTERNAL or 5xx, or logs an error', async () => {
  const walk = targets();
  // Real cursors first: forged ones are built from them.
  for (const target of walk.filter((candidate) => isConnection(candidate.field))) {
    const coordinate = `${target.parent.name}.${target.field.name}`;
    const document = documentFor(target).replace(' { __typename }', ' { edges { cursor } }');
    const answer = await app.gql(document, validVariables(target), { token: admin.token });
    const connection = isRoot(target.parent)
      ? answer.data?.[target.field.name]
      : answer.data?.node?.[target.field.name];
    const cursor = connection?.edges?.[0]?.cursor as string | undefined;
    if (cursor) cursors.set(coordinate, cursor);
    expect(cursor, `a real cursor of ${coordinate}: ${JSON.stringify(answer.errors)}`).toBeTruthy();
  }

  const covered = new Set<string>();
  const failures: string[] = [];
  let tried = 0;
  for (const target of walk) {
    const document = documentFor(target);
    const base = validVariables(target);
    for (const arg of target.field.args as readonly GraphQLArgument[]) {
      const coordinate = `${target.parent.name}.${target.field.name}(${arg.name})`;
      const cursorOf =
        (arg.name === 'after' || arg.name === 'before') && isConnection(target.field)
          ? `${target.parent.name}.${target.field.name}`
          : null;
      covered.add(coordinate);
      for (const item of hostileCases(arg.type, coordinate, idRuleOf(arg.extensions), cursorOf)) {
        covered.add(item.covers);
        tried += 1;
        const variables = { ...base, [arg.name]: item.value };
        const small = JSON.stringify(variables).length < 4000;
        const sends: [string, () => Promise<Outcome>][] = [];
        if (target.operation === 'subscription') {
          sends.push(['sse admin', () => sse(document, variables, admin.token)]);
          sends.push(['sse anonymous', () => sse(document, variables)]);
          if (small) sends.push(['ws admin', () => ws(document, variables, admin.token)]);
        } else {
          sends.push(['post admin', () => postJson(document, variables, admin.token)]);
          sends.push(['post anonymous', () => postJson(document, variables)]);
          if (target.operation === 'query' && small) {
            sends.push(['get admin', () => getQuery(document, variables, admin.token)]);
          }
        }
        for (const [via, send] of sends) {
          const outcome = await send();
          const bad = outcome.errors.filter(
            (error) => !error.extensions?.code || error.extensions.code === 'INTERNAL_SERVER_ERROR',
          );
          if (outcome.status >= 500 || bad.length > 0) {
            failures.push(
              `${coordinate} via ${via} = ${describeValue(item.value)}: ${outcome.status} ${JSON.stringify(bad).slice(0, 300)}`,
            );
          }
        }
      }
    }
  }
  console.info(
    `hostile-input walker: ${tried} (argument × value) cases over ${covered.size} arguments and input fields`,
  );
  expect(failures).toEqual([]);
  const errorLines = logLines.filter((line) => (JSON.parse(line) as { level: number }).level >= 50);
  expect(errorLines.map((line) => line.slice(0, 400))).toEqual([]);
  expect(declaredArguments().filter((coordinate) => !covered.has(coordinate))).toEqual([]);
  expect(tried).toBeGreaterThan(500);
}, 600_000);
