import type { FetchAPI, Plugin } from 'graphql-yoga';

/**
 * A GET route outside GraphQL: its answer to a GET of `pathname`, or undefined when the path is
 * not its own. Synchronous for paths it does not serve.
 */
export type GetEndpoint = (
  request: Request,
  pathname: string,
  fetchAPI: FetchAPI,
) => Response | Promise<Response | undefined> | undefined;

/**
 * Serves the GET endpoints beside GraphQL (the dashboard, /ready, /metrics) from one onRequest,
 * tried in order: a POST (every GraphQL request but GET queries) returns at once, and the API's
 * hot path pays one hook call and no promise for all of them.
 */
export function useGetEndpoints(...endpoints: GetEndpoint[]): Plugin {
  return {
    onRequest({ request, url, endResponse, fetchAPI }) {
      if (request.method !== 'GET') return;
      const { pathname } = url;
      // Each in turn: an endpoint whose promise finds nothing (an unknown asset) lets the next try.
      const from = (index: number): Promise<void> | undefined => {
        for (let next = index; next < endpoints.length; next += 1) {
          const answer = endpoints[next]!(request, pathname, fetchAPI);
          if (answer === undefined) continue;
          if (!(answer instanceof Promise)) {
            endResponse(answer);
            return undefined;
          }
          return answer.then((response) => {
            if (response) endResponse(response);
            else return from(next + 1);
          });
        }
        return undefined;
      };
      return from(0);
    },
  };
}
