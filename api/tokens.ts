/** The token routes: API tokens for automation and join tokens that enrol hosts; admin only. */
import { z } from "zod";
import { apiTokenSchema, joinTokenSchema, tokenCreateSchema } from "../core/model.ts";
import type { ApiContext } from "./app.ts";
import { listOf, pathParam, resource } from "./operation.ts";
import { readBody } from "./request.ts";

/** Any token the server issues, without its secret. */
export const tokenSchema = z.discriminatedUnion("kind", [apiTokenSchema, joinTokenSchema])
  .describe("Any token the server issues, without its secret");

const secret = z.string().describe("The secret to send; shown only in this answer");

/** A token just created, with its secret. */
export const createdTokenSchema = z.discriminatedUnion("kind", [
  apiTokenSchema.extend({ token: secret }).describe("An API token with its secret"),
  joinTokenSchema.extend({ token: secret }).describe("A join token with its signed token"),
]).describe("A token just created, with its secret: the only time the secret is shown");

const tokenList = listOf(tokenSchema, "tokens");
const ID = { ...pathParam("id", z.string(), "Token id"), unchecked: true };

/** The token routes. */
export const TOKENS = resource({
  prefix: "/v1/tokens",
  responses: {
    ApiToken: apiTokenSchema,
    JoinToken: joinTokenSchema,
    Token: tokenSchema,
    TokenList: tokenList,
    CreatedToken: createdTokenSchema,
  },
  requests: { TokenCreate: tokenCreateSchema },
  operations: {
    listTokens: {
      method: "get",
      path: "",
      tag: "Tokens",
      summary: "List tokens",
      description: "API and join tokens, in one page, never with their secrets.",
      access: "admin",
      replies: [{ status: 200, description: "The tokens", body: tokenList }],
    },
    createToken: {
      method: "post",
      path: "",
      tag: "Tokens",
      summary: "Create an API token or a join token",
      description:
        'Without `kind`, an API token is created (`kind` defaults to `"api"`). The secret is in this answer only.',
      access: "admin",
      body: tokenCreateSchema,
      replies: [{
        status: 201,
        description: "The token with its secret",
        body: createdTokenSchema,
      }],
    },
    getToken: {
      method: "get",
      path: "/{id}",
      tag: "Tokens",
      summary: "Get a token",
      access: "admin",
      params: [ID],
      replies: [{ status: 200, description: "The token", body: tokenSchema }],
      errors: { 404: "The token does not exist" },
    },
    revokeToken: {
      method: "delete",
      path: "/{id}",
      tag: "Tokens",
      summary: "Revoke a token",
      description:
        "It stops working at once. Revoking a join token also revokes every certificate issued with it, renewals included.",
      access: "admin",
      params: [ID],
      replies: [{ status: 204, description: "Revoked" }],
      errors: { 404: "The token does not exist" },
    },
  },
});

/** The sub-app of {@link TOKENS}. */
export function tokensApp({ deps, resourceApp }: ApiContext) {
  const { tokens, identity, log } = deps;
  return resourceApp(TOKENS, {
    listTokens: async (c) => {
      return c.json({ items: await tokens.list(), next: null });
    },
    createToken: async (c) => {
      const body = await readBody(c, TOKENS.operations.createToken.body, "token");
      if (body.kind === "join") {
        const created = await identity.createJoinToken(body, deps.advertise());
        log.info("Join token created", {
          id: created.id,
          namespace: created.namespace,
          serviceAccount: created.serviceAccount,
          node: created.node,
          uses: created.uses,
        });
        return c.json(created, 201);
      }
      const created = await tokens.create(body);
      log.info("Token created", { id: created.id, role: created.role, node: created.node });
      return c.json(created, 201);
    },
    getToken: async (c) => {
      return c.json(await tokens.get(c.req.param("id")!));
    },
    revokeToken: async (c) => {
      const token = await tokens.revoke(c.req.param("id")!);
      if (token.kind === "join") await identity.revokeToken(token.id);
      log.info("Token revoked", { id: token.id, kind: token.kind });
      return c.body(null, 204);
    },
  });
}
