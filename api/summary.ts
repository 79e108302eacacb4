/**
 * The mesh in numbers, for the dashboard's overview: one request instead of
 * paging through every list in the browser. Counting walks the registry's
 * lists a page at a time on the server, where a page is a store read.
 */
import { z } from "zod";
import type { Page } from "../registry/registry.ts";
import type { ApiContext } from "./app.ts";
import { resource } from "./operation.ts";

const count = z.number().int().min(0);

/** The counts the overview shows. */
export const summarySchema = z.object({
  revision: z.number().int().describe("The registry revision the counts reflect"),
  services: count,
  instances: z.object({ healthy: count, unhealthy: count, draining: count }),
  nodes: z.object({ alive: count, stale: count, draining: count }),
  proxies: z.object({
    connected: count,
    inSync: count.describe("Proxies that ACKed the last version of every type they subscribe to"),
    outOfSync: count,
  }),
}).describe("Counts of services, instances by health, nodes by status and proxies by sync state");

/** The summary routes. */
export const SUMMARY = resource({
  prefix: "/v1/summary",
  responses: { Summary: summarySchema },
  operations: {
    getSummary: {
      method: "get",
      path: "",
      tag: "Services",
      summary: "Counts of services, instances, nodes and proxies",
      description:
        "What the dashboard's overview shows: services, instances by health, nodes by status, and connected proxies in and out of sync.",
      access: "read",
      replies: [{ status: 200, description: "The counts", body: summarySchema }],
    },
  },
});

/** Largest page read while counting. */
const PAGE = 1000;

/** Calls `each` for every item of a paged list. */
async function walk<T>(
  list: (filter: { limit: number; after?: string }) => Promise<Page<T>>,
  each: (item: T) => void,
): Promise<number> {
  let after: string | null = null;
  let revision = 0;
  do {
    const page: Page<T> = await list(after === null ? { limit: PAGE } : { limit: PAGE, after });
    for (const item of page.items) each(item);
    after = page.next;
    revision = page.revision;
  } while (after !== null);
  return revision;
}

/** The sub-app of {@link SUMMARY}. */
export function summaryApp({ deps, resourceApp }: ApiContext) {
  const { registry } = deps;
  return resourceApp(SUMMARY, {
    getSummary: async (c) => {
      let services = 0;
      const instances = { healthy: 0, unhealthy: 0, draining: 0 };
      const nodes = { alive: 0, stale: 0, draining: 0 };
      const revision = await walk((f) => registry.listServices(f), () => services++);
      await walk((f) => registry.listInstances(f), (i) => instances[i.health]++);
      await walk((f) => registry.listNodes(f), (n) => {
        nodes[n.status]++;
        if (n.draining) nodes.draining++;
      });
      const proxies = deps.proxies();
      const inSync = proxies.filter((p) => p.types.every((t) => t.inSync)).length;
      return c.json({
        revision,
        services,
        instances,
        nodes,
        proxies: { connected: proxies.length, inSync, outOfSync: proxies.length - inSync },
      });
    },
  });
}
