/** The audit log of policy writes, refused ones included. */
import { z } from "zod";
import { InvalidError } from "../core/errors.ts";
import { policyKindFromText } from "../core/policy/model.ts";
import type { ApiContext } from "./app.ts";
import { QUERY, queryParam, resource, timestamp } from "./operation.ts";

/** One policy write, stored or refused. */
export const auditEntrySchema = z.object({
  id: z.number().int().describe("Increasing; pass the last one as `after` for the next page"),
  at: timestamp,
  actor: z.string().describe("The token id of the caller"),
  action: z.string().describe("`apply`, `delete` or `rollback`"),
  kind: z.string().describe("The kind as sent (may be anything for a refused write)"),
  namespace: z.string(),
  name: z.string(),
  outcome: z.enum(["ok", "refused"]),
  status: z.number().int().describe("The HTTP status the caller got"),
  revision: z.number().int().nullable().describe("The revision written, or `null`"),
  detail: z.string().describe("For a refused write, the first problems"),
}).describe("One policy write, stored or refused");

const auditList = z.object({
  items: z.array(auditEntrySchema),
  next: z.string().nullable().describe(
    "When the page is full, the `id` of its last entry: pass it as `after` for the next page; else `null`",
  ),
}).describe("A page of the audit log, oldest first");

// Strict: an unknown parameter is refused rather than silently ignored.
const auditQuerySchema = z.strictObject({
  after: z.coerce.number().int().min(0).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  kind: z.string().optional(),
  namespace: z.string().optional(),
  name: z.string().optional(),
  outcome: z.enum(["ok", "refused"]).optional(),
});

/** The audit route. */
export const AUDIT = resource({
  prefix: "/v1/audit",
  responses: { AuditEntry: auditEntrySchema, AuditList: auditList },
  operations: {
    listAudit: {
      method: "get",
      path: "",
      tag: "Audit",
      summary: "The audit log of policy writes",
      description:
        "Every policy write, stored or refused (invalid, failed precondition, not found), oldest first. Dry runs are not recorded.",
      access: "read",
      params: [
        queryParam(
          "after",
          z.number().int().min(0),
          "Only entries after this `id` (the `next` of the previous page)",
        ),
        QUERY.limit,
        queryParam("kind", z.string(), "Only this kind (any case, singular or plural)"),
        queryParam("namespace", z.string(), 'Only this namespace (`""` is MeshConfig\'s)'),
        queryParam("name", z.string(), "Only policies of this name"),
        queryParam("outcome", z.enum(["ok", "refused"]), "Only stored (`ok`) or refused writes"),
      ],
      replies: [{ status: 200, description: "A page of the audit log", body: auditList }],
      errors: { 422: "A parameter is invalid, or unknown" },
    },
  },
});

/** The sub-app of {@link AUDIT}. */
export function auditApp({ deps, resourceApp }: ApiContext) {
  const { policies } = deps;
  return resourceApp(AUDIT, {
    listAudit: async (c) => {
      const parsed = auditQuerySchema.safeParse(c.req.query());
      if (!parsed.success) {
        const problems = parsed.error.issues.map((i) => ({
          in: "query" as const,
          pointer: i.code === "unrecognized_keys" ? `/${i.keys[0]}` : `/${i.path.join("/")}`,
          message: i.code === "unrecognized_keys" ? "Unknown query parameter" : i.message,
        }));
        throw new InvalidError(
          `Invalid audit query: ${problems[0]!.pointer}: ${problems[0]!.message}`,
          problems,
        );
      }
      const q = parsed.data;
      const items = await policies.audit({
        limit: q.limit,
        ...(q.after !== undefined ? { after: q.after } : {}),
        ...(q.kind !== undefined ? { kind: policyKindFromText(q.kind) ?? q.kind } : {}),
        ...(q.namespace !== undefined ? { namespace: q.namespace } : {}),
        ...(q.name !== undefined ? { name: q.name } : {}),
        ...(q.outcome !== undefined ? { outcome: q.outcome } : {}),
      });
      const last = items.at(-1);
      return c.json({ items, next: items.length === q.limit && last ? String(last.id) : null });
    },
  });
}
