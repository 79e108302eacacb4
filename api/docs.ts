/** The API's own documentation: the OpenAPI document and the page rendered from it, both public. */
import type { ApiContext } from "./app.ts";
import { docsPage } from "./docs_page.ts";
import { json, resource } from "./operation.ts";

/** The documentation routes. */
export const DOCS = resource({
  prefix: "/",
  operations: {
    getOpenApi: {
      method: "get",
      path: "/openapi.json",
      tag: "Documentation",
      summary: "This OpenAPI document",
      access: "public",
      replies: [{
        status: 200,
        description: "The OpenAPI 3.1 document of this API",
        body: json({ type: "object" }),
      }],
    },
    getDocs: {
      method: "get",
      path: "/docs",
      tag: "Documentation",
      summary: "This API's documentation as a web page",
      description:
        "A self-contained page rendered from the OpenAPI document (no external scripts).",
      access: "public",
      replies: [{
        status: 200,
        description: "An HTML page",
        body: { mediaType: "text/html", schema: { type: "string" } },
      }],
    },
  },
});

/** The sub-app of {@link DOCS}. */
export function docsApp({ resourceApp, document }: ApiContext) {
  return resourceApp(DOCS, {
    getOpenApi: (c) => c.json(document()),
    getDocs: (c) => c.html(docsPage(document())),
  });
}
