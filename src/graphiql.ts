import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import type { GraphiQLOptions } from 'graphql-yoga';

/**
 * GraphiQL built from the installed `@graphql-yoga/render-graphiql`: its page inlines the editor's
 * script, styles, fonts, favicon and Monaco workers, so it works on a machine without internet
 * access (yoga's default page loads all of them from unpkg and stays at "Loading…" offline).
 * The page is about 9 MB and the options are fixed per app, so it is rendered once per distinct
 * options rather than per request.
 */
export function offlineGraphiQL(): (options: GraphiQLOptions) => string {
  let rendered: { key: string; html: string } | undefined;
  return (options) => {
    const key = JSON.stringify(options);
    if (rendered?.key !== key) rendered = { key, html: renderGraphiQL(options) };
    return rendered.html;
  };
}
