/** The server's own routes: liveness, readiness, metrics and version, all public. */
import { z } from "zod";
import { UnavailableError } from "../core/errors.ts";
import { VERSION } from "../core/version.ts";
import type { ApiContext } from "./app.ts";
import { resource } from "./operation.ts";

const liveness = z.object({ status: z.literal("ok") }).describe("The process serves HTTP");
/** Who runs the singleton duties (`store/leader_elector.ts`), in `/readyz` and `/v1/ca/status`. */
export const leaderStatusSchema = z.object({
  self: z.string().describe("This replica's name"),
  leading: z.boolean().describe(
    "True when this replica runs the singleton duties (today: the stale sweep and reaping)",
  ),
  leader: z.string().nullable().describe(
    "The replica holding the leader lease as last read; `null` when unknown or free",
  ),
  epoch: z.number().int().nullable().describe(
    "The lease's fencing epoch, one more per change of leader; `null` on SQLite, whose one server always leads",
  ),
}).describe("Which replica leads");

const readiness = z.object({
  status: z.literal("ready"),
  store: z.string().describe("The store backend, e.g. `sqlite`"),
  revision: z.number().int().describe("The registry revision"),
  leader: leaderStatusSchema,
}).describe("The server is ready and its store answers");
const version = z.object({ version: z.string() }).describe("The server's version");

/** The server's routes. */
export const STATUS = resource({
  prefix: "/",
  responses: { Liveness: liveness, Readiness: readiness, Version: version },
  operations: {
    getLiveness: {
      method: "get",
      path: "/healthz",
      tag: "Server",
      summary: "Liveness",
      description: "Answers 200 as long as the process serves HTTP.",
      access: "public",
      replies: [{ status: 200, description: "Alive", body: liveness }],
    },
    getReadiness: {
      method: "get",
      path: "/readyz",
      tag: "Server",
      summary: "Readiness",
      description:
        "Checks the store. Turns 503 once shutdown begins, so load balancers drain, and while the store cannot be reached or its writes fail (a full disk, a read-only data directory), until a write succeeds.",
      access: "public",
      replies: [{ status: 200, description: "Ready", body: readiness }],
      errors: { 503: "The server is shutting down, or the store does not answer or take writes" },
    },
    getMetrics: {
      method: "get",
      path: "/metrics",
      tag: "Server",
      summary: "Prometheus metrics",
      access: "public",
      replies: [{
        status: 200,
        description: "Metrics in the Prometheus text exposition format",
        body: { mediaType: "text/plain", schema: { type: "string" } },
      }],
    },
    getVersion: {
      method: "get",
      path: "/v1/version",
      tag: "Server",
      summary: "Server version",
      access: "public",
      replies: [{ status: 200, description: "The version", body: version }],
    },
  },
});

/** The sub-app of {@link STATUS}. */
export function statusApp({ deps, resourceApp }: ApiContext) {
  const { store, registry, metrics } = deps;
  return resourceApp(STATUS, {
    getLiveness: (c) => c.json({ status: "ok" }),
    getReadiness: async (c) => {
      if (deps.stopping?.()) throw new UnavailableError("The server is shutting down");
      await store.ping();
      return c.json({
        status: "ready",
        store: store.backend,
        revision: registry.feed.revision,
        leader: deps.leader(),
      });
    },
    getMetrics: async (c) =>
      c.body(await metrics.registry.metrics(), 200, {
        "content-type": metrics.registry.contentType,
      }),
    getVersion: (c) => c.json({ version: VERSION }),
  });
}
