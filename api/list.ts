/** How the registry's lists answer: a page, after an optional blocking wait. */
import { authorize, type Permission } from "../auth/tokens.ts";
import type { ChangeFeed } from "../registry/feed.ts";
import type { ListFilter, Page } from "../registry/registry.ts";
import { type ApiHandler, filtersOf, type Operation } from "./operation.ts";
import { encodeCursor, readListQuery } from "./request.ts";

/**
 * The handler of the list `op` declares: its filters are the query
 * parameters `op` declares. It answers one page, blocking first when the
 * caller passed `?index=` until `feed` is past it; `X-Ironmesh-Index` is the
 * revision the page reflects.
 */
export function listHandler<T>(
  op: Operation & { access: Permission },
  feed: ChangeFeed,
  run: (filter: ListFilter) => Promise<Page<T> & { revision: number }>,
): ApiHandler {
  const allowed = filtersOf(op);
  return async (c) => {
    authorize(c.get("principal"), op.access);
    const request = readListQuery(c, allowed);
    if (request.index !== undefined) {
      // No abort signal: Deno's request.signal also fires on success and warns on every use;
      // an abandoned wait simply ends at its (bounded) timeout.
      await feed.wait(request.index, request.waitMs);
    }
    const page = await run(request.filter);
    c.header("x-ironmesh-index", String(page.revision));
    return c.json({ items: page.items, next: encodeCursor(page.next) });
  };
}
