import {
  type GraphQLObjectType,
  getNamedType,
  getNullableType,
  isInputObjectType,
  isIntrospectionType,
  isNonNullType,
  isObjectType,
} from 'graphql';
import { describe, expect, it } from 'vitest';
import { schema } from '../../src/schema.ts';

/**
 * The schema's shape conventions, checked over the schema itself so a new field cannot drift
 * from them: Relay mutations (one `input`, one payload per field), connections named after
 * their node type, and every object with an id refetchable as a Node.
 */

const capitalize = (name: string) => name[0]!.toUpperCase() + name.slice(1);
const mutationFields = () => Object.values(schema.getMutationType()!.getFields());
const objectTypes = () =>
  Object.values(schema.getTypeMap()).filter(
    (type): type is GraphQLObjectType => isObjectType(type) && !isIntrospectionType(type),
  );

describe('mutations', () => {
  it('each take exactly one argument, `input: <Field>Input!`, an input object', () => {
    const wrong = mutationFields().flatMap((field) => {
      const [arg, ...others] = field.args;
      const ok =
        others.length === 0 &&
        arg?.name === 'input' &&
        isNonNullType(arg.type) &&
        isInputObjectType(arg.type.ofType) &&
        arg.type.ofType.name === `${capitalize(field.name)}Input`;
      return ok ? [] : [`${field.name}(${field.args.map((a) => `${a.name}: ${a.type}`)})`];
    });
    expect(wrong).toEqual([]);
    expect(mutationFields().length).toBeGreaterThanOrEqual(13);
  });

  it('each return their own non-null `<Field>Payload` object', () => {
    const wrong = mutationFields().flatMap((field) => {
      const payload = getNullableType(field.type);
      const ok =
        isNonNullType(field.type) &&
        isObjectType(payload) &&
        payload.name === `${capitalize(field.name)}Payload`;
      return ok ? [] : [`${field.name}: ${field.type}`];
    });
    expect(wrong).toEqual([]);
  });

  it('each say that expected failures come as `extensions.code` errors, and which', () => {
    const wrong = mutationFields()
      .filter((field) => !/`extensions\.code`.*: [A-Z_]+/.test(field.description ?? ''))
      .map((field) => field.name);
    expect(wrong).toEqual([]);
  });
});

describe('connections', () => {
  const connections = () =>
    objectTypes().filter((type) => 'edges' in type.getFields() && 'pageInfo' in type.getFields());

  it('are named `<Node>Connection` with `<Node>Edge` edges, never after the field that returns them', () => {
    const names = connections().map((connection) => {
      const edge = getNamedType(connection.getFields().edges!.type) as GraphQLObjectType;
      const node = getNamedType(edge.getFields().node!.type);
      return { connection: connection.name, edge: edge.name, node: node.name };
    });
    expect(names.length).toBeGreaterThanOrEqual(6);
    for (const { connection, edge, node } of names) {
      expect({ connection, edge }).toEqual({
        connection: `${node}Connection`,
        edge: `${node}Edge`,
      });
    }
  });

  it('leave no generated `<Parent><Field>Connection` names anywhere', () => {
    const generated = Object.keys(schema.getTypeMap()).filter((name) =>
      /^(Query|Mutation|Subscription).+|ConnectionEdge$/.test(name),
    );
    expect(generated).toEqual([]);
  });
});

it('every object with an `id` field is a Node, refetchable through `node(id:)`', () => {
  const notNodes = objectTypes()
    .filter((type) => 'id' in type.getFields())
    .filter((type) => !type.getInterfaces().some((face) => face.name === 'Node'))
    .map((type) => type.name);
  expect(notNodes).toEqual([]);
  expect(schema.getType('ApiToken')).toSatisfy(
    (type) => isObjectType(type) && type.getInterfaces().some((face) => face.name === 'Node'),
  );
});
