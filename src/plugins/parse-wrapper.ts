import type { parse } from 'graphql';

/** graphql-js' `parse`, as envelop's `onParse` hands it over and `setParseFn` takes it. */
export type ParseFn = typeof parse;

/**
 * A parse wrapper for envelop's `setParseFn`, built once per parser handed in (yoga hands every
 * request the same one) instead of a closure per request; yoga's parse cache calls it only for
 * documents it has not seen.
 */
export function wrapParseOnce(wrap: (parseFn: ParseFn) => ParseFn): (parseFn: ParseFn) => ParseFn {
  let given: ParseFn | undefined;
  let wrapped: ParseFn | undefined;
  return (parseFn) => {
    if (parseFn !== given || !wrapped) {
      given = parseFn;
      wrapped = wrap(parseFn);
    }
    return wrapped;
  };
}
