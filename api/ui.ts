/**
 * The web dashboard, served by the server itself at `/ui/`: one HTML shell
 * and two assets compiled into the program (`ui/assets.ts`, built from
 * `ui/client/` by `deno task ui`), so it works air-gapped and from the
 * single-file bundle. `/` sends a browser there and keeps answering API
 * clients with the JSON 404 they had. See docs/ui.md.
 */
import { z } from "zod";
import { NotFoundError } from "../core/errors.ts";
import type { ApiContext } from "./app.ts";
import { headerParam, pathParam, resource } from "./operation.ts";
import { UI_ASSETS } from "./ui/assets.ts";
import { dashboardPage, UI_HEADERS, UI_PATH } from "./ui/page.ts";

/** The dashboard routes. */
export const UI = resource({
  prefix: "/",
  operations: {
    getRoot: {
      method: "get",
      path: "/",
      tag: "Dashboard",
      summary: "Sends a browser to the dashboard",
      description:
        "A caller that accepts `text/html` (a browser) is redirected to `/ui/`; any other caller gets a 404 problem, as for any unknown path.",
      access: "public",
      params: [{
        ...headerParam("Accept", z.string(), "A browser's, naming `text/html`"),
        unchecked: true,
      }],
      replies: [{ status: 302, description: "To `/ui/`", headers: ["Location"] }],
      errors: { 404: "The caller does not accept `text/html`: nothing is here for an API client" },
    },
    getDashboard: {
      method: "get",
      path: "/ui/",
      tag: "Dashboard",
      summary: "The web dashboard",
      description:
        "An HTML shell that loads the dashboard's script and stylesheet from `/ui/assets/`; the script signs in with an API token and calls this API. Sent with a strict `Content-Security-Policy`.",
      access: "public",
      replies: [{
        status: 200,
        description: "An HTML page",
        body: { mediaType: "text/html", schema: { type: "string" } },
        headers: ["Content-Security-Policy"],
      }],
    },
    getDashboardAsset: {
      method: "get",
      path: "/ui/assets/{file}",
      tag: "Dashboard",
      summary: "A script or stylesheet of the dashboard",
      access: "public",
      params: [{
        ...pathParam("file", z.string(), "`app.js` or `app.css`"),
        unchecked: true,
      }],
      replies: [{
        status: 200,
        description: "The asset",
        body: [
          { mediaType: "text/javascript", schema: { type: "string" } },
          { mediaType: "text/css", schema: { type: "string" } },
        ],
        headers: ["Content-Security-Policy"],
      }],
      errors: { 404: "No such asset" },
    },
  },
});

/** The sub-app of {@link UI}. */
export function uiApp({ resourceApp }: ApiContext) {
  const page = dashboardPage();
  return resourceApp(UI, {
    getRoot: (c) => {
      if (!/\btext\/html\b/.test(c.req.header("accept") ?? "")) {
        throw new NotFoundError(`No route for ${c.req.method} ${c.req.path}`);
      }
      return c.redirect(UI_PATH, 302);
    },
    getDashboard: (c) => c.html(page, 200, UI_HEADERS),
    getDashboardAsset: (c) => {
      const file = c.req.param("file") ?? "";
      const asset = Object.hasOwn(UI_ASSETS, file) ? UI_ASSETS[file] : undefined;
      if (!asset) throw new NotFoundError(`No dashboard asset "${file}"`);
      return c.body(asset.body, 200, { ...UI_HEADERS, "content-type": asset.type });
    },
  });
}
