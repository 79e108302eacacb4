/**
 * Who the caller is: the dashboard asks once after sign-in, to hide the
 * controls its role may not use (the routes' declared access still decides).
 */
import { z } from "zod";
import { permissionsOf } from "../auth/tokens.ts";
import { ROLES } from "../core/model.ts";
import type { ApiContext } from "./app.ts";
import { resource } from "./operation.ts";

/** The calling token's role and what it may do. */
export const whoamiSchema = z.object({
  tokenId: z.string().describe("The calling token's id"),
  role: z.enum(ROLES),
  node: z.string().nullable().describe("For agent tokens bound to a node: that node"),
  permissions: z.array(z.enum(["read", "write", "admin", "agent"])).describe(
    "What the role may do: `read`, `write` (operators and admins), `admin`, `agent`",
  ),
}).describe("The calling token's role and permissions");

/** The caller routes. */
export const WHOAMI = resource({
  prefix: "/v1/whoami",
  responses: { Whoami: whoamiSchema },
  operations: {
    getWhoami: {
      method: "get",
      path: "",
      tag: "Tokens",
      summary: "The calling token's role and permissions",
      description:
        "Any API token may ask. The dashboard uses it to show only the controls the role may use; the server enforces roles on every route regardless.",
      access: "read",
      replies: [{ status: 200, description: "The caller", body: whoamiSchema }],
    },
  },
});

/** The sub-app of {@link WHOAMI}. */
export function whoamiApp({ resourceApp }: ApiContext) {
  return resourceApp(WHOAMI, {
    getWhoami: (c) => {
      const { tokenId, role, node } = c.get("principal");
      return c.json({ tokenId, role, node, permissions: [...permissionsOf(role)] });
    },
  });
}
