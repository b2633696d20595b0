import {
  buildSchema,
  type GraphQLSchema,
  isEnumType,
  isInputObjectType,
  isInterfaceType,
  isIntrospectionType,
  isObjectType,
  isSpecifiedScalarType,
} from 'graphql';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { ERROR_CODES, isErrorCode } from '../../src/errors.ts';
import { printedSchema } from '../../src/schema.ts';

/** Upper-case words of four letters or more that name neither a code nor anything in the schema. */
const ACRONYMS = new Set(['JSON', 'HTML']);
/** Configuration variables (MAX_PAGE_SIZE, …) that descriptions quote for their limits. */
const CONFIG_KEYS = new Set(Object.keys(loadConfig({})));

function descriptionsOf(schema: GraphQLSchema): string[] {
  const texts: (string | null | undefined)[] = [schema.description];
  for (const type of Object.values(schema.getTypeMap())) {
    // The spec's types and scalars are described by the spec.
    if (isIntrospectionType(type) || isSpecifiedScalarType(type)) continue;
    texts.push(type.description);
    if (isObjectType(type) || isInterfaceType(type)) {
      for (const field of Object.values(type.getFields())) {
        texts.push(field.description, ...field.args.map((arg) => arg.description));
      }
    } else if (isInputObjectType(type)) {
      texts.push(...Object.values(type.getFields()).map((field) => field.description));
    } else if (isEnumType(type)) {
      texts.push(...type.getValues().map((value) => value.description));
    }
  }
  return texts.filter((text): text is string => Boolean(text));
}

/**
 * The error codes the descriptions of `sdl` name: their upper-case words (letters and
 * underscores, four or more) that are not one of its enum values, a configuration variable or
 * a listed acronym.
 */
function codesNamedIn(sdl: string): Set<string> {
  const schema = buildSchema(sdl);
  const enumValues = new Set(
    Object.values(schema.getTypeMap())
      .filter(isEnumType)
      .flatMap((type) => type.getValues().map((value) => value.name)),
  );
  const words = descriptionsOf(schema).flatMap((text) => text.match(/\b[A-Z][A-Z_]{3,}\b/g) ?? []);
  return new Set(
    words.filter((word) => !enumValues.has(word) && !CONFIG_KEYS.has(word) && !ACRONYMS.has(word)),
  );
}

const fieldCodes = Object.entries(ERROR_CODES)
  .filter(([, code]) => code.phase === 'field')
  .map(([name]) => name)
  .sort();

describe('error codes', () => {
  it('finds the codes a description names, not enum values or configuration (the check works)', () => {
    const sdl = `
      "Lists at most MAX_PAGE_SIZE; SOME_CODE when empty, JSON otherwise."
      type Query { "State: DONE or OTHER_CODE." state: State }
      "A state." enum State { "Finished." DONE }
    `;
    expect([...codesNamedIn(sdl)].sort()).toEqual(['OTHER_CODE', 'SOME_CODE']);
  });

  it('named in the schema descriptions are all in the closed set', () => {
    const unknown = [...codesNamedIn(printedSchema)].filter((word) => !isErrorCode(word));
    expect(unknown).toEqual([]);
  });

  it('raised by resolvers are exactly those the schema descriptions name', () => {
    expect([...codesNamedIn(printedSchema)].sort()).toEqual(fieldCodes);
    expect(fieldCodes).toContain('BAD_USER_INPUT');
  });

  it('each say who raises them and when', () => {
    const undescribed = Object.entries(ERROR_CODES)
      .filter(([, code]) => code.description.length < 20)
      .map(([name]) => name);
    expect(undescribed).toEqual([]);
  });
});
