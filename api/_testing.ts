/**
 * The app with every real part behind it (SQLite in a temp dir, registry,
 * tokens, CA, identity) for tests that call it with `app.request()`, the way
 * Hono apps are tested: no network.
 */
import { TokenService } from "../auth/tokens.ts";
import { CertificateAuthority } from "../ca/authority.ts";
import { IdentityService } from "../ca/identity.ts";
import { JoinTokens } from "../ca/join_tokens.ts";
import { type Clock, FakeClock } from "../core/clock.ts";
import { silentLogger } from "../core/log.ts";
import type { Role } from "../core/model.ts";
import { PolicyService } from "../policy/service.ts";
import { ChangeFeed } from "../registry/feed.ts";
import { Registry } from "../registry/registry.ts";
import { createBackup } from "../store/backup.ts";
import { openSqliteStore } from "../store/sqlite.ts";
import { createApp } from "./app.ts";
import { Metrics } from "./metrics.ts";
import { type DeclaredOperation, declaredOperations } from "./openapi.ts";
import { RESOURCES } from "./resources.ts";
import { z } from "zod";

/** What a test gets. */
export interface TestApp {
  app: ReturnType<typeof createApp>;
  registry: Registry;
  /** The CA and the identity service behind `/v1/ca/…`, for tests that serve the app over TLS. */
  authority: CertificateAuthority;
  identity: IdentityService;
  /** A new API token of `role` (bound to `node` for agents, when given). */
  tokenFor(role: Role, node?: string): Promise<string>;
}

/** Options of {@link withTestApp}. */
export interface TestAppOptions {
  /** Default: a `FakeClock`; the real clock for certificates a TLS peer checks. */
  clock?: Clock;
  /** Default: `test.local`. */
  trustDomain?: string;
  /** The server URLs join tokens name. Default: `https://127.0.0.1:1`. */
  advertise?: () => string[];
  /** Lifetime of workload certificates. Default: 1 h. */
  leafTtlMs?: number;
}

/** Runs `fn` with a fresh app, then stops and removes everything. */
export async function withTestApp(
  fn: (t: TestApp) => Promise<void>,
  options: TestAppOptions = {},
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const store = openSqliteStore(`${dir}/ironmesh.db`);
  const clock = options.clock ?? new FakeClock();
  // Long timer periods: the tests never wait for sweeps or flushes.
  const registry = new Registry(store, {
    clock,
    log: silentLogger,
    sweepIntervalMs: 3_600_000,
    flushIntervalMs: 3_600_000,
  });
  await registry.start();
  const tokens = new TokenService(store, clock);
  const authority = await CertificateAuthority.open({
    dir: `${dir}/ca`,
    trustDomain: options.trustDomain ?? "test.local",
    clock,
  });
  const joinTokens = await JoinTokens.open(store, clock, `${dir}/token-signing.key`);
  const identity = new IdentityService(store, authority, joinTokens, {
    clock,
    log: silentLogger,
    leafTtlMs: options.leafTtlMs ?? 3_600_000,
    liveNodes: () => Promise.resolve(registry.aliveNodes()),
  });
  await identity.start();
  const policyFeed = new ChangeFeed();
  const app = createApp({
    registry,
    tokens,
    store,
    metrics: new Metrics({
      objects: () => store.counts(),
      revision: () => registry.feed.revision,
      watchers: () => registry.feed.watchers,
      liveNodes: () => registry.liveNodes,
    }),
    log: silentLogger,
    identity,
    advertise: options.advertise ?? (() => ["https://127.0.0.1:1"]),
    backup: () => createBackup(store, dir),
    proxies: () => [],
    configDump: () => null,
    policies: new PolicyService({
      store,
      log: silentLogger,
      changed: () => void store.policyRevision().then((r) => policyFeed.publish(r)),
    }),
    policyFeed,
    explainProxy: () => Promise.resolve(null),
    leader: () => ({ self: "test", leading: true, leader: "test", epoch: null }),
  });
  const tokenFor = async (role: Role, node?: string) =>
    (await tokens.create({ kind: "api", role, description: "", ...(node ? { node } : {}) }))
      .token;
  try {
    await fn({ app, registry, authority, identity, tokenFor });
  } finally {
    await registry.stop();
    authority.close();
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Every declared operation of the API, with its full path. */
export const DECLARED: readonly DeclaredOperation[] = declaredOperations(
  RESOURCES.map((r) => r.declared),
);

const SAMPLE_PATH_VALUES: Record<string, string> = {
  namespace: "default",
  id: "web@vm-9",
  name: "vm-9",
  kind: "trafficroute",
  artifact: "ironmesh-plan9-mips",
  file: "app.js",
};

/**
 * A route's path with sample values for its parameters, none of which
 * exists; a parameter that allows one value only (MeshConfig's
 * `/v1/policies/meshconfig/mesh`) gets that value.
 */
export function samplePath(route: DeclaredOperation): string {
  return route.path.replace(/\{(\w+)\}/g, (_, name: string) => {
    const schema = route.params?.find((p) => p.in === "path" && p.name === name)?.schema;
    if (schema instanceof z.ZodLiteral) return String(schema.value);
    const value = SAMPLE_PATH_VALUES[name];
    if (value === undefined) throw new Error(`No sample value for {${name}} of ${route.path}`);
    return value;
  });
}
