/**
 * The agent's own watch of the registry, for its DNS server: the services,
 * their healthy instances and the DestinationPolicies that name subsets,
 * each followed with the REST API's blocking queries (`?index=&wait=`) over
 * the agent's mTLS client (an agent may read the registry). Every change
 * rebuilds the DNS zone (`dns_zone.ts`) from the latest of the three.
 *
 * When the server cannot be reached, the zone keeps the last view and
 * answers from it (also after an agent restart: the view is kept on disk,
 * `dns_view_file.ts`); each list is asked again with a backoff of at most
 * {@link RETRY_CAP_MS}, and the first answer after an outage replaces the
 * view. One line is logged per outage, one on recovery.
 */
import { formatDuration } from "../core/duration.ts";
import type { Logger } from "../core/log.ts";
import { backoffDelay } from "./backoff.ts";
import { loadView, type RegistryView, ViewFile } from "./dns_view_file.ts";
import type { DnsZone } from "./dns_zone.ts";
import type { ServerApi } from "./server_api.ts";
import { sleep } from "./wait.ts";

/** How long the server holds a blocking query without a change. */
export const WATCH_WAIT = "55s";
/** The call's own timeout: the wait plus room for a slow answer. */
const WATCH_TIMEOUT_MS = 70_000;
/** Items per page (the API's maximum). */
const PAGE = 1000;
/** Backoff cap of a failing list. */
export const RETRY_CAP_MS = 5_000;

interface InstanceItem {
  namespace: string;
  service: string;
  address: string;
  port: number;
  labels: Record<string, string>;
  health: string;
}

interface PolicyItem {
  metadata: { namespace: string };
  spec: { service: string; subsets?: { name: string; labels: Record<string, string> }[] };
}

/** Options of {@link watchRegistry}. */
export interface WatchOptions {
  api: ServerApi;
  zone: DnsZone;
  log: Logger;
  random?: () => number;
  /** Called after each rebuild of the zone, with the view (for tests and metrics). */
  onView?: (view: RegistryView) => void;
  /**
   * Where the view is kept on disk (`dns_view_file.ts`): read before the
   * first answer from the server, rewritten after every change. Absent: memory only.
   */
  viewPath?: string;
}

/**
 * Follows one list until `signal` aborts: every page of it, again each time
 * the server's index moves, handing the items to `apply`.
 */
async function follow<T>(
  options: WatchOptions,
  what: string,
  path: string,
  query: Record<string, string>,
  apply: (items: T[]) => void,
  signal: AbortSignal,
): Promise<void> {
  const { api, log } = options;
  let index: number | null = null;
  let failures = 0;
  while (!signal.aborted) {
    const items: T[] = [];
    let next: string | null = null;
    let newIndex: number | null = null;
    let error: string | null = null;
    do {
      // Only the first page waits for a change; the rest are read at once.
      const blocking: boolean = next === null && index !== null;
      const page: Awaited<ReturnType<ServerApi["watchList"]>> = await api.watchList<T>(path, {
        ...query,
        limit: String(PAGE),
        ...(next === null ? {} : { cursor: next }),
        ...(blocking ? { index: String(index), wait: WATCH_WAIT } : {}),
      }, { signal, timeoutMs: WATCH_TIMEOUT_MS });
      const { result, index: answered } = page;
      if (signal.aborted) return;
      if (result.kind !== "ok") {
        error = result.kind === "unreachable"
          ? result.error
          : `HTTP ${result.status}: ${result.error.message}`;
        break;
      }
      newIndex ??= answered;
      items.push(...result.body.items as T[]);
      next = result.body.next ?? null;
    } while (next !== null);
    if (error !== null) {
      const delay = backoffDelay(failures, { baseMs: 200, capMs: RETRY_CAP_MS }, options.random);
      if (failures === 0) {
        log.warn("Registry watch failed; DNS answers from the last view", {
          list: what,
          error,
          retryIn: formatDuration(delay),
        });
      }
      failures++;
      await sleep(delay, signal);
      continue;
    }
    if (failures > 0) log.info("Registry watch recovered", { list: what, failures });
    failures = 0;
    // An answer at the same index (the wait ran out) changes nothing.
    if (newIndex === null || newIndex !== index) {
      apply(items);
      // After the zone changed: from this line on, answers say what the registry does.
      log.debug("Registry view changed", { list: what, items: items.length, index: newIndex });
    }
    index = newIndex;
  }
}

/**
 * Keeps `zone` in step with the registry until `signal` aborts; see the
 * module comment. Never rejects.
 */
export async function watchRegistry(options: WatchOptions, signal: AbortSignal): Promise<void> {
  const { viewPath, log } = options;
  const file = viewPath === undefined ? undefined : new ViewFile(viewPath, log);
  const saved = viewPath === undefined ? undefined : await loadView(viewPath, log);
  const view: RegistryView = saved ?? { services: [], instances: [], subsets: [] };
  const rebuild = () => {
    options.zone.update(view.instances, view.subsets, view.services);
    file?.save(view);
    options.onView?.(view);
  };
  if (saved !== undefined) {
    // Until the server answers, DNS answers what it last said.
    options.zone.update(view.instances, view.subsets, view.services);
    log.info("DNS view loaded", {
      path: viewPath,
      services: view.services.length,
      instances: view.instances.length,
    });
  }
  await Promise.all([
    follow<{ namespace: string; name: string }>(
      options,
      "services",
      "/v1/services",
      {},
      (items) => {
        view.services = items.map((s) => ({ namespace: s.namespace, name: s.name }));
        rebuild();
      },
      signal,
    ),
    follow<InstanceItem>(
      options,
      "instances",
      "/v1/instances",
      // Drained and unhealthy instances are `draining` and `unhealthy`: only these serve.
      { health: "healthy" },
      (items) => {
        view.instances = items.map((i) => ({
          namespace: i.namespace,
          service: i.service,
          address: i.address,
          port: i.port,
          labels: i.labels,
        }));
        rebuild();
      },
      signal,
    ),
    follow<PolicyItem>(
      options,
      "destination policies",
      "/v1/policies/destinationpolicy",
      {},
      (items) => {
        view.subsets = items.flatMap((p) =>
          (p.spec.subsets ?? []).map((s) => ({
            namespace: p.metadata.namespace,
            service: p.spec.service,
            name: s.name,
            labels: s.labels,
          }))
        );
        rebuild();
      },
      signal,
    ),
  ]);
  await file?.flush();
}
