import type { Plugin } from 'graphql-yoga';
import { appError } from '../errors.ts';

const JSON_PARAMETERS = ['variables', 'extensions'] as const;

/** Which GraphQL-over-HTTP parameter of a GET request is not JSON (null: none of them). */
function malformedParameter(request: Request): string | null {
  if (request.method !== 'GET') return null;
  const params = new URL(request.url).searchParams;
  for (const name of JSON_PARAMETERS) {
    const text = params.get(name);
    if (!text) continue;
    try {
      JSON.parse(text);
    } catch {
      return name;
    }
  }
  return null;
}

/**
 * yoga's GET parser calls JSON.parse on `variables` and `extensions` unguarded, so
 * `?extensions=notjson` answered 500 (form-encoded POSTs, parsed the same way, are refused with
 * 415 by useHttpGuards before this). A parameter that is not JSON is the client's
 * error: 400 with code BAD_REQUEST, naming the parameter in `extensions.argument`.
 */
export function useRequestParamsErrors(): Plugin {
  return {
    onRequestParse({ request, requestParser, setRequestParser }) {
      // Only GET parameters reach an unguarded JSON.parse (yoga's POST JSON parser answers
      // BAD_REQUEST itself): POSTs keep the parser as it is, without a wrapper per request.
      if (request.method !== 'GET' || !requestParser) return;
      setRequestParser(async (parsed) => {
        try {
          return await requestParser(parsed);
        } catch (error) {
          if (!(error instanceof SyntaxError)) throw error;
          const argument = malformedParameter(request) ?? 'body';
          throw appError('BAD_REQUEST', `The \`${argument}\` parameter is not valid JSON`, {
            argument,
            http: { status: 400 },
          });
        }
      });
    },
  };
}
