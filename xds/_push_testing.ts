/**
 * The push pipeline over a real SQLite store and a real registry, as the
 * push tests and the proxyless push benchmark (`scripts/bench/proxyless_push.ts`)
 * build it: a registry on a fake clock whose sweeps and flushes never run on
 * their own, a policy service whose writes reach the pipeline, and one
 * place that tears it all down.
 */
import { FakeClock } from "../core/clock.ts";
import { silentLogger } from "../core/log.ts";
import { PolicyService } from "../policy/service.ts";
import { Registry } from "../registry/registry.ts";
import { openSqliteStore } from "../store/sqlite.ts";
import type { Store } from "../store/store.ts";
import { type PushOptions, PushPipeline } from "./push.ts";

export interface PushFixture {
  store: Store;
  registry: Registry;
  push: PushPipeline;
  policies: PolicyService;
  /**
   * Feeds the registry's changes to the pipeline from now on. Call it once
   * the pipeline may push (after `push.start()`, or with a debounce longer
   * than the setup): a push before `start()` fails.
   */
  follow(): void;
  /** Stops the pipeline and the registry, closes the store and removes its directory. */
  close(): Promise<void>;
}

/** A fresh fixture; the pipeline takes `options` (store and logger aside) and is not started. */
export async function openPushFixture(
  options: Omit<PushOptions, "store" | "log">,
  clock = new FakeClock(),
): Promise<PushFixture> {
  const dir = await Deno.makeTempDir({ prefix: "ironmesh-push-" });
  const store = openSqliteStore(`${dir}/ironmesh.db`);
  const registry = new Registry(store, {
    clock,
    log: silentLogger,
    sweepIntervalMs: 3_600_000,
    flushIntervalMs: 3_600_000,
  });
  await registry.start();
  const push = new PushPipeline({ store, log: silentLogger, ...options });
  const policies = new PolicyService({ store, log: silentLogger, changed: (c) => push.changed(c) });
  const unsubscribes: (() => void)[] = [];
  return {
    store,
    registry,
    push,
    policies,
    follow: () => void unsubscribes.push(registry.subscribe((change) => push.changed(change))),
    close: async () => {
      for (const unsubscribe of unsubscribes) unsubscribe();
      push.stop();
      await registry.stop();
      await store.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}
