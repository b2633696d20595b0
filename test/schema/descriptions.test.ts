import {
  buildSchema,
  isEnumType,
  isInputObjectType,
  isInterfaceType,
  isIntrospectionType,
  isObjectType,
  isSpecifiedScalarType,
  isUnionType,
} from 'graphql';
import { describe, expect, it } from 'vitest';
import { printedSchema } from '../../src/schema.ts';

/**
 * Every type, field, argument, input field and enum value of the printed schema (what GraphiQL
 * users read) that has no description, by its schema coordinate (`Type.field(arg:)`).
 * Introspection types and the built-in scalars are the spec's, and described by it.
 */
function undescribedElements(sdl: string): string[] {
  const schema = buildSchema(sdl);
  const missing: string[] = [];
  const check = (coordinate: string, description: string | null | undefined) => {
    if (!description?.trim()) missing.push(coordinate);
  };
  for (const type of Object.values(schema.getTypeMap())) {
    if (isIntrospectionType(type) || isSpecifiedScalarType(type)) continue;
    check(type.name, type.description);
    if (isObjectType(type) || isInterfaceType(type)) {
      for (const field of Object.values(type.getFields())) {
        check(`${type.name}.${field.name}`, field.description);
        for (const arg of field.args) {
          check(`${type.name}.${field.name}(${arg.name}:)`, arg.description);
        }
      }
    } else if (isInputObjectType(type)) {
      for (const field of Object.values(type.getFields())) {
        check(`${type.name}.${field.name}`, field.description);
      }
    } else if (isEnumType(type)) {
      for (const value of type.getValues()) check(`${type.name}.${value.name}`, value.description);
    } else if (isUnionType(type)) {
      // A union has no members of its own to describe beyond its name.
    }
  }
  return missing;
}

describe('schema descriptions', () => {
  it('finds undescribed elements of every kind (the check itself works)', () => {
    const sdl = `
      "Described." type Query { "Described." a(x: Int, "Described." y: Int): T, b: Int }
      type T { "Described." f: Int }
      "Described." input I { g: Int }
      "Described." enum E { "Described." ONE TWO }
      "Described." interface N { "Described." id: ID }
      scalar Date
    `;
    expect(undescribedElements(sdl).sort()).toEqual(
      ['Date', 'E.TWO', 'I.g', 'Query.a(x:)', 'Query.b', 'T'].sort(),
    );
  });

  it('describes every type, field, argument, input field and enum value', () => {
    expect(undescribedElements(printedSchema)).toEqual([]);
  });
});
