/**
 * `ironmesh get KIND --watch`: prints the list, then every change to it as it happens, as
 * `kubectl get -w` does. It waits on the server's blocking queries (`?index=N&wait=…` on the
 * lists that send `X-Ironmesh-Index`), so an idle watch costs one open request, not polling.
 * Any registry change wakes the query; only objects that changed are printed, each with what
 * happened to it: `ADDED`, `MODIFIED` or `DELETED`.
 */
import { stringify } from "yaml";
import type { ApiClient } from "../client/api_client.ts";
import { columnWidths, type Format, formatRows } from "./client_support.ts";
import { type AnyKindSpec, cells, headers } from "./kinds.ts";

/** What happened to one object between two answers. */
export type WatchEvent = "ADDED" | "MODIFIED" | "DELETED";

/** How long one blocking query waits before the server answers unchanged and it is asked again. */
const WAIT = "5m";

/**
 * Fields that change without the object changing in a way a watcher cares about; a heartbeat
 * moves a node's `lastHeartbeat` without moving the registry revision.
 */
const VOLATILE: ReadonlySet<string> = new Set(["lastHeartbeat"]);

/** Options of {@link watchList}. */
export interface WatchOptions {
  /** The filters, as query parameters. */
  query: Record<string, string>;
  format: Format;
  /** Ends the watch; none by default (it runs until the process is stopped). */
  signal?: AbortSignal;
  /** Where lines go; `console.log` by default. */
  write?: (text: string) => void;
}

/** Prints the list of `spec`'s kind, then its changes, until `options.signal` aborts. */
export async function watchList(
  client: ApiClient,
  spec: AnyKindSpec,
  options: WatchOptions,
): Promise<void> {
  const write = options.write ?? ((text: string) => console.log(text));
  const key = spec.key as (item: unknown) => string | undefined;
  const printer = eventPrinter(spec, options.format, write);
  let { items, index } = await client.listAt<Record<string, unknown>>(spec.path, options.query);
  let known = new Map(items.map((item) => [key(item) ?? "", item]));
  printer(items.map((item) => ["ADDED", item]));
  while (!options.signal?.aborted) {
    let next: { items: Record<string, unknown>[]; index: number };
    try {
      next = await client.listAt<Record<string, unknown>>(spec.path, options.query, {
        index,
        wait: WAIT,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
    } catch (error) {
      if (options.signal?.aborted) return;
      throw error;
    }
    const now = new Map(next.items.map((item) => [key(item) ?? "", item]));
    const events: [WatchEvent, Record<string, unknown>][] = [];
    for (const [id, item] of now) {
      const before = known.get(id);
      if (before === undefined) events.push(["ADDED", item]);
      else if (comparable(before) !== comparable(item)) events.push(["MODIFIED", item]);
    }
    for (const [id, item] of known) if (!now.has(id)) events.push(["DELETED", item]);
    if (events.length > 0) printer(events);
    known = now;
    index = next.index;
  }
}

function comparable(item: Record<string, unknown>): string {
  return JSON.stringify(item, (name, value) => VOLATILE.has(name) ? undefined : value);
}

/**
 * Prints batches of events: a table with an `EVENT` column whose header comes once and whose
 * columns only ever widen, so that rows printed later still line up; one JSON object per line
 * (`{"type": …, "object": …}`); or YAML documents of the same shape.
 */
function eventPrinter(
  spec: AnyKindSpec,
  format: Format,
  write: (text: string) => void,
): (events: [WatchEvent, unknown][]) => void {
  if (format === "json") {
    return (events) => {
      for (const [type, object] of events) write(JSON.stringify({ type, object }));
    };
  }
  if (format === "yaml") {
    return (events) => {
      for (const [type, object] of events) write(`---\n${stringify({ type, object }).trimEnd()}`);
    };
  }
  // "MODIFIED" is the widest event: rows printed later line up with the first ones.
  let widths: number[] = ["MODIFIED".length];
  let headerDone = false;
  return (events) => {
    const rows = events.map(([type, item]) => [type, ...cells(spec, item, format)]);
    if (!headerDone) rows.unshift(["EVENT", ...headers(spec, format)]);
    headerDone = true;
    widths = columnWidths(rows, widths);
    write(formatRows(rows, widths));
  };
}
