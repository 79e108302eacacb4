/**
 * The change feed between replicas: on a shared store (PostgreSQL), this
 * replica follows the revision log (`store/log_follower.ts`) and turns the
 * entries other replicas wrote into what their local writes did there: the
 * registry's feed and subscribers (blocking queries, event streams, the
 * push pipeline through its subscription), the policy feed, the push
 * pipeline for policies and identities, the token cache and the deny list
 * of revoked certificates, and the CA (whose material other replicas
 * change: a rotation step, a renewed intermediate). Entries this replica wrote are skipped: their
 * effects happened at commit.
 */
import type { TokenService } from "../auth/tokens.ts";
import type { CertificateAuthority } from "../ca/authority.ts";
import type { IdentityService } from "../ca/identity.ts";
import type { Logger } from "../core/log.ts";
import { isEmptyChange, NO_CHANGE } from "../core/mesh_change.ts";
import { changeOfLog } from "../registry/changes.ts";
import type { ChangeFeed } from "../registry/feed.ts";
import type { Registry } from "../registry/registry.ts";
import { LogFollower } from "../store/log_follower.ts";
import type { LogChange, LogEntry, RevisionLog, Store } from "../store/store.ts";
import type { PushPipeline } from "../xds/push.ts";

/** The parts a remote write reaches. */
export interface ReplicaParts {
  store: Store;
  registry: Registry;
  policyFeed: ChangeFeed;
  push: PushPipeline;
  tokens: TokenService;
  identity: IdentityService;
  authority: Pick<CertificateAuthority, "reload">;
  log: Logger;
}

/** The text of the shared CA written last by every change to it: its commit point. */
const CA_STATE = "state.json";

const REGISTRY_KINDS = new Set<LogChange["kind"]>(["service", "node", "instance"]);

/**
 * Starts following `log` after revision `after` (its head, read before
 * this replica loaded its state). Returns the follower; stop it first at
 * shutdown.
 */
export function followReplicas(log: RevisionLog, after: number, parts: ReplicaParts): LogFollower {
  let failing = false;
  const follower = new LogFollower(log, {
    apply: async (entries) => {
      await applyRemote(entries.filter((e) => e.origin !== log.origin), parts);
      if (failing) parts.log.info("Following the other replicas' writes again");
      failing = false;
    },
    reload: async () => {
      parts.log.warn(
        "Lost track of the other replicas' writes (the revision log moved past this replica): reloading from the store",
      );
      // The push pipeline is told every key itself, so the registry's subscribers get none.
      await parts.push.reload();
      await parts.registry.reloadRemote(NO_CHANGE);
      parts.policyFeed.publish(await parts.store.policyRevision());
    },
    failed: (error) => {
      if (!failing) parts.log.warn("Cannot read the other replicas' writes; retrying", { error });
      failing = true;
    },
  });
  follower.start(after);
  return follower;
}

/** Applies one page of other replicas' entries, merged: one refresh per key, not per entry. */
async function applyRemote(entries: LogEntry[], parts: ReplicaParts): Promise<void> {
  if (entries.length === 0) return;
  let registryRevision = 0;
  let policyRevision = 0;
  const registryChanges: LogChange[] = [];
  const otherChanges: LogChange[] = [];
  for (const entry of entries) {
    registryRevision = Math.max(registryRevision, entry.registry ?? 0);
    policyRevision = Math.max(policyRevision, entry.policies ?? 0);
    for (const c of entry.changes) {
      (REGISTRY_KINDS.has(c.kind) ? registryChanges : otherChanges).push(c);
    }
  }
  for (const c of otherChanges) if (c.kind === "token") parts.tokens.forget(c.key);
  if (otherChanges.some((c) => c.kind === "ca" && c.key === CA_STATE)) {
    // Another replica changed the CA: sign and trust as it now says, and serve the new bundle.
    await parts.authority.reload();
    parts.identity.events.trustChanged?.();
  }
  const serials = otherChanges.flatMap((c) => c.kind === "certificate" ? [c.key] : []);
  if (serials.length > 0) await parts.identity.certificatesChanged(serials);
  if (registryChanges.length > 0 || registryRevision > 0) {
    await parts.registry.applyRemote(registryRevision, changeOfLog(registryChanges));
  }
  const other = changeOfLog(otherChanges);
  if (!isEmptyChange(other)) parts.push.changed(other);
  if (policyRevision > 0) parts.policyFeed.publish(policyRevision);
}
