/** How the registry's lists answer: a page, after an optional blocking wait. */
import type { ChangeFeed } from "../registry/feed.ts";
import type { ListFilter, Page } from "../registry/registry.ts";
import { type ApiHandler, filtersOf, type Operation } from "./operation.ts";
import { encodeCursor, readListQuery } from "./request.ts";

/** Where a list's pages come from. */
export interface ListSource<T> {
  /** Published on every change the list reflects; a blocking query waits on it. */
  feed: ChangeFeed;
  /** One page of the list. */
  page(filter: ListFilter): Promise<Page<T> & { revision: number }>;
}

/**
 * The handler of the list `op` declares: its filters are the query
 * parameters `op` declares. It answers one page, blocking first when the
 * caller passed `?index=` until the feed is past it; `X-Ironmesh-Index` is
 * the revision the page reflects.
 */
export function listHandler<T>(
  op: Operation,
  source: ListSource<T>,
): ApiHandler {
  const { feed } = source;
  const allowed = filtersOf(op);
  return async (c) => {
    const request = readListQuery(c, allowed);
    if (request.index !== undefined) {
      // No abort signal: Deno's request.signal also fires on success and warns on every use;
      // an abandoned wait simply ends at its (bounded) timeout.
      await feed.wait(request.index, request.waitMs);
    }
    const page = await source.page(request.filter);
    c.header("x-ironmesh-index", String(page.revision));
    return c.json({ items: page.items, next: encodeCursor(page.next) });
  };
}
