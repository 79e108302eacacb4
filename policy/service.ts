/**
 * Policy writes: validate like a compiler (every problem of every document,
 * with JSON pointers), then store atomically with history and audit, or —
 * for a dry run — report what would change without storing anything.
 *
 * A batch (`ironmesh apply -f` with many documents) is validated as a whole
 * against the mesh as it will be once the batch lands, so a TrafficRoute may
 * use a subset that a DestinationPolicy of the same file defines. Either
 * every document is stored or none is.
 */
import { isDeepStrictEqual } from "node:util";
import { type FieldProblem, NotFoundError, PreconditionFailedError } from "../core/errors.ts";
import { type JsonChange, jsonDiff } from "../core/json_diff.ts";
import type { Logger } from "../core/log.ts";
import { type MeshChange, meshChange } from "../core/mesh_change.ts";
import {
  type AnyPolicy,
  API_VERSION,
  type PolicyDraft,
  policyKey,
  type PolicyKind,
  type PolicySet,
  policySet,
} from "../core/policy/model.ts";
import {
  checkPolicy,
  type KnownService,
  parsePolicy,
  type ValidationContext,
} from "../core/policy/validate.ts";
import type { AuditEntry, AuditQuery, PolicyRevision, PolicyWrite, Store } from "../store/store.ts";
import {
  describe,
  identify,
  invalid,
  itemIndex,
  itemPointer,
  preconditionProblem,
} from "./problems.ts";

/** One resource of one proxy that a dry run would change. */
export interface ResourceChange {
  /** `clusters`, `endpoints`, `listeners`, `routes` or `secrets`. */
  type: string;
  name: string;
  op: "added" | "removed" | "changed";
  /** For `changed`: the leaves that differ. */
  diff?: JsonChange[];
}

/** A proxy whose configuration a dry run would change. */
export interface ProxyChange {
  /** `sidecar` or `proxyless`. */
  kind: string;
  /** The node of a sidecar; for proxyless clients, the namespace whose clients share the config. */
  target: string;
  /** Connected proxies (stream ids) this configuration is served to. */
  connected: string[];
  changes: ResourceChange[];
}

/** Options of {@link PolicyService}. */
export interface PolicyServiceOptions {
  store: Store;
  log: Logger;
  /** Called after every stored change with the policies written, so the push pipeline recomputes. */
  changed: (change: MeshChange) => void;
  /** For dry runs: every proxy whose configuration differs under `policies`, with diffs. */
  preview?: (policies: PolicySet) => ProxyChange[];
}

/** Who writes, and the conditions of the write. */
export interface WriteOptions {
  /** The caller's token id or node, for history and audit. */
  actor: string;
  dryRun?: boolean;
  /** Per document: the revision it must be at, or `null` for "must not exist" (If-Match / If-None-Match). */
  expect?: (number | null | undefined)[];
  /** The write restores an earlier revision: history and audit say `rollback`. */
  rollback?: boolean;
}

/** What happened (or, in a dry run, would happen) to one document. */
export interface ApplyItem {
  kind: PolicyKind;
  namespace: string;
  name: string;
  action: "created" | "updated" | "unchanged" | "deleted";
  /** Revision after the write; in a dry run, the revision the write would get. */
  revision: number | null;
  /** The stored object (not in a dry run, nor for a delete). */
  object?: AnyPolicy;
}

/** The answer to an apply, delete or rollback. */
export interface ApplyResult {
  dryRun: boolean;
  items: ApplyItem[];
  /** Problems that do not stop the write, each with `/items/<i>/…` pointers. */
  warnings: FieldProblem[];
  /** Dry runs only: proxies whose configuration would change. */
  proxies?: ProxyChange[];
}

/** A history entry with what changed since the previous revision. */
export interface HistoryEntry extends PolicyRevision {
  changes: JsonChange[];
}

function refOf(p: { kind: PolicyKind; metadata: { namespace: string; name: string } }): string {
  return policyKey(p.kind, p.metadata.namespace, p.metadata.name);
}

/** The content an operator controls: what makes two writes the same. */
function content(p: { metadata: { labels: Record<string, string> }; spec: unknown }) {
  return { labels: p.metadata.labels, spec: p.spec };
}

/** Policy reads and writes for the REST API and CLI. */
export class PolicyService {
  readonly #o: PolicyServiceOptions;

  constructor(options: PolicyServiceOptions) {
    this.#o = options;
  }

  /** One policy; `NotFoundError` when absent. */
  async get(kind: PolicyKind, namespace: string, name: string): Promise<AnyPolicy> {
    const policy = await this.#o.store.getPolicy(kind, namespace, name);
    if (!policy) throw new NotFoundError(`${kind} "${describe(namespace, name)}" does not exist`);
    return policy;
  }

  /** Policies by kind and namespace. */
  list(kind?: PolicyKind, namespace?: string): Promise<AnyPolicy[]> {
    return this.#o.store.listPolicies({
      ...(kind ? { kind } : {}),
      ...(namespace !== undefined ? { namespace } : {}),
    });
  }

  /**
   * Validates and stores (or, with `dryRun`, only checks) a batch of policy
   * documents. Refused batches are audited and throw `InvalidError` listing
   * every problem with `/items/<i>/…` pointers.
   */
  async apply(documents: readonly unknown[], options: WriteOptions): Promise<ApplyResult> {
    const problems: FieldProblem[] = [];
    // Each parsed draft with the index of its document, for pointers and expectations.
    const parsed: { index: number; draft: PolicyDraft }[] = [];
    documents.forEach((doc, index) => {
      const result = parsePolicy(doc);
      if (result.draft) parsed.push({ index, draft: result.draft });
      else problems.push(...result.problems.map((p) => itemPointer(index, p)));
    });
    const seen = new Map<string, number>();
    for (const { index, draft: d } of parsed) {
      const key = refOf(d);
      const first = seen.get(key);
      if (first !== undefined) {
        problems.push({
          pointer: `/items/${index}/metadata/name`,
          message: `${d.kind} "${
            describe(d.metadata.namespace, d.metadata.name)
          }" appears twice in the batch (also item ${first})`,
        });
      } else seen.set(key, index);
    }
    const drafts = parsed.map((p) => p.draft);

    const current = await this.#o.store.listPolicies();
    const byKey = new Map(current.map((p) => [refOf(p), p]));
    const now = new Date().toISOString();
    const incoming = drafts.map((d): AnyPolicy => {
      const existing = byKey.get(refOf(d));
      return {
        apiVersion: API_VERSION,
        kind: d.kind,
        metadata: {
          ...d.metadata,
          revision: existing?.metadata.revision ?? 0,
          createdAt: existing?.metadata.createdAt ?? now,
          updatedAt: now,
          updatedBy: options.actor,
        },
        spec: d.spec,
      } as AnyPolicy;
    });
    const next = new Map(byKey);
    for (const p of incoming) next.set(refOf(p), p);
    const after = policySet([...next.values()]);
    // The documents that parsed are checked against the mesh too, so that one run reports
    // every problem of the batch, not the first kind of problem only.
    const ctx = await this.#context(after, drafts);
    const warnings: FieldProblem[] = [];
    for (const { index, draft } of parsed) {
      const result = checkPolicy(draft, ctx);
      problems.push(...result.errors.map((p) => itemPointer(index, p)));
      warnings.push(...result.warnings.map((p) => itemPointer(index, p)));
    }
    const actualRevision = this.#checkExpectations(parsed, byKey, options, problems);
    if (problems.length > 0) {
      problems.sort((a, b) => itemIndex(a) - itemIndex(b));
      const precondition = problems.every((p) => p.in === "header");
      await this.#refuse(documents, options, problems, precondition ? 412 : 422);
      if (precondition) {
        throw new PreconditionFailedError(
          problems.map((p) => p.message).join("; "),
          actualRevision,
        );
      }
      throw invalid(problems);
    }

    const changed = drafts.filter((d) => {
      const existing = byKey.get(refOf(d));
      return !existing || !isDeepStrictEqual(content(existing), content(d));
    });
    const items: ApplyItem[] = drafts.map((d) => {
      const existing = byKey.get(refOf(d));
      const action = !existing ? "created" : changed.includes(d) ? "updated" : "unchanged";
      return {
        kind: d.kind,
        namespace: d.metadata.namespace,
        name: d.metadata.name,
        action,
        revision: action === "unchanged" ? existing!.metadata.revision : null,
      };
    });
    if (options.dryRun) {
      return {
        dryRun: true,
        items,
        warnings,
        proxies: this.#o.preview?.(after) ?? [],
      };
    }
    if (changed.length === 0) {
      return { dryRun: false, items: this.#withObjects(items, byKey), warnings };
    }
    // The expectations below catch a concurrent write between our read and this write.
    const stored = await this.#o.store.writePolicies({
      writes: changed.map((d): PolicyWrite => ({
        op: "put",
        policy: incoming[drafts.indexOf(d)]!,
        ...(options.rollback ? { rollback: true } : {}),
      })),
      expect: changed.map((d) => ({
        kind: d.kind,
        namespace: d.metadata.namespace,
        name: d.metadata.name,
        revision: byKey.get(refOf(d))?.metadata.revision ?? null,
      })),
      actor: options.actor,
      at: now,
    }).catch(async (error) => {
      if (error instanceof PreconditionFailedError) {
        await this.#refuse(documents, options, [{ pointer: "", message: error.message }], 412);
      }
      throw error;
    });
    const storedByKey = new Map<string, AnyPolicy>();
    for (const p of stored) if (p) storedByKey.set(refOf(p), p);
    this.#o.changed(meshChange({ policies: changed.map(refOf) }));
    this.#o.log.info("Policies applied", {
      actor: options.actor,
      changed: changed.map(refOf),
      unchanged: drafts.length - changed.length,
    });
    const merged = new Map([...byKey, ...storedByKey]);
    return { dryRun: false, items: this.#withObjects(items, merged), warnings };
  }

  /** Deletes one policy (or, with `dryRun`, shows what would change). */
  async delete(
    kind: PolicyKind,
    namespace: string,
    name: string,
    options: WriteOptions,
  ): Promise<ApplyResult> {
    const key = policyKey(kind, namespace, name);
    const current = await this.#o.store.listPolicies();
    const existing = current.find((p) => refOf(p) === key);
    const target = { kind, metadata: { namespace, name } };
    const expected = options.expect?.[0];
    if (!existing) {
      await this.#audit("delete", target, options, "refused", 404, null, "does not exist");
      throw new NotFoundError(`${kind} "${describe(namespace, name)}" does not exist`);
    }
    if (expected !== undefined && expected !== existing.metadata.revision) {
      const { message } = preconditionProblem(
        kind,
        namespace,
        name,
        expected,
        existing.metadata.revision,
      );
      await this.#audit("delete", target, options, "refused", 412, null, message);
      throw new PreconditionFailedError(message, existing.metadata.revision);
    }
    const after = policySet(current.filter((p) => refOf(p) !== key));
    if (existing.kind === "DestinationPolicy") {
      // Routes name subsets; removing their definitions would blackhole that traffic.
      const broken = await this.#brokenRoutes(
        existing.metadata.namespace,
        existing.spec.service,
        after,
      );
      if (broken.length > 0) {
        await this.#audit("delete", target, options, "refused", 422, null, broken[0]!.message);
        throw invalid(broken);
      }
    }
    const item: ApplyItem = { kind, namespace, name, action: "deleted", revision: null };
    if (options.dryRun) {
      return { dryRun: true, items: [item], warnings: [], proxies: this.#o.preview?.(after) ?? [] };
    }
    await this.#o.store.writePolicies({
      writes: [{ op: "delete", kind, namespace, name }],
      expect: [{ kind, namespace, name, revision: existing.metadata.revision }],
      actor: options.actor,
      at: new Date().toISOString(),
    }).catch(async (error) => {
      // A concurrent write between our read and this delete.
      if (error instanceof PreconditionFailedError) {
        await this.#audit("delete", target, options, "refused", 412, null, error.message);
      }
      throw error;
    });
    this.#o.changed(meshChange({ policies: [key] }));
    this.#o.log.info("Policy deleted", { actor: options.actor, policy: key });
    return { dryRun: false, items: [item], warnings: [] };
  }

  /** A policy's history, oldest first, each entry with what changed since the one before. */
  async history(kind: PolicyKind, namespace: string, name: string): Promise<HistoryEntry[]> {
    const revisions = await this.#o.store.policyHistory(kind, namespace, name);
    if (revisions.length === 0) {
      throw new NotFoundError(`${kind} "${describe(namespace, name)}" has no history`);
    }
    let previous: unknown = null;
    return revisions.map((r) => {
      const now = r.object ? content(r.object) : null;
      const entry = { ...r, changes: jsonDiff(previous, now) };
      previous = now;
      return entry;
    });
  }

  /**
   * Stores the content of an earlier revision as a new revision (history
   * only grows), through the same validation as any write: the mesh may have
   * moved on since, and a rollback must not store what a write would refuse.
   */
  async rollback(
    kind: PolicyKind,
    namespace: string,
    name: string,
    toRevision: number,
    options: WriteOptions,
  ): Promise<ApplyResult> {
    const revisions = await this.#o.store.policyHistory(kind, namespace, name);
    const target = revisions.find((r) => r.revision === toRevision);
    const ref = { kind, metadata: { namespace, name } };
    if (!target || !target.object) {
      const known = revisions.filter((r) => r.object).map((r) => r.revision).join(", ");
      const message = !target
        ? `${kind} "${describe(namespace, name)}" has no revision ${toRevision}${
          known ? ` (revisions: ${known})` : ""
        }`
        : `Revision ${toRevision} of ${kind} "${describe(namespace, name)}" is a delete`;
      await this.#audit("rollback", ref, options, "refused", 404, null, message);
      throw new NotFoundError(message);
    }
    const document = {
      apiVersion: API_VERSION,
      kind,
      metadata: target.object.metadata,
      spec: target.object.spec,
    };
    return await this.apply([document], { ...options, rollback: true });
  }

  /**
   * Records a write refused before it reached validation (the caller may
   * not write at all), so the audit log holds every attempt.
   */
  async refused(
    action: string,
    ref: { kind: string; namespace: string; name: string },
    actor: string,
    status: number,
    detail: string,
  ): Promise<void> {
    await this.#audit(
      action,
      { kind: ref.kind, metadata: { namespace: ref.namespace, name: ref.name } },
      { actor },
      "refused",
      status,
      null,
      detail,
    );
  }

  /** The audit log. */
  audit(query: AuditQuery): Promise<AuditEntry[]> {
    return this.#o.store.listAudit(query);
  }

  #withObjects(items: ApplyItem[], byKey: Map<string, AnyPolicy>): ApplyItem[] {
    return items.map((item) => {
      const object = byKey.get(policyKey(item.kind, item.namespace, item.name));
      return object ? { ...item, revision: object.metadata.revision, object } : item;
    });
  }

  #checkExpectations(
    parsed: readonly { index: number; draft: PolicyDraft }[],
    byKey: ReadonlyMap<string, AnyPolicy>,
    options: WriteOptions,
    problems: FieldProblem[],
  ): number | null {
    let firstActual: number | null = null;
    parsed.forEach(({ index, draft: d }) => {
      const expected = options.expect?.[index];
      if (expected === undefined) return;
      const actual = byKey.get(refOf(d))?.metadata.revision ?? null;
      if (expected === actual) return;
      if (problems.every((p) => p.in !== "header")) firstActual = actual;
      problems.push(
        preconditionProblem(d.kind, d.metadata.namespace, d.metadata.name, expected, actual),
      );
    });
    return firstActual;
  }

  /** Errors of the TrafficRoutes that split or mirror to `service` once `after` is the mesh's policy. */
  async #brokenRoutes(
    namespace: string,
    service: string,
    after: PolicySet,
  ): Promise<FieldProblem[]> {
    const ctx = await this.#context(after, after.trafficRoutes);
    const problems: FieldProblem[] = [];
    for (const route of after.trafficRoutes) {
      const targets = route.spec.rules.flatMap((
        r,
      ) => [...r.split ?? [], ...r.mirror ? [r.mirror] : []]);
      const uses = targets.some((t) =>
        t.subset !== undefined && (t.namespace ?? route.metadata.namespace) === namespace &&
        (t.service ?? route.spec.service) === service
      );
      if (!uses) continue;
      for (const error of checkPolicy(route, ctx).errors) {
        problems.push({
          pointer: "",
          message: `TrafficRoute "${
            describe(route.metadata.namespace, route.metadata.name)
          }" would break (${error.pointer}: ${error.message}): change or delete it first`,
        });
      }
    }
    return problems;
  }

  /**
   * What `checked` is validated against: `policies`, and the services the
   * checks ask about, read one by one. The checks are dry-run until they ask
   * for no service not read yet: reading every service of a large mesh cost
   * more than the write itself.
   */
  async #context(
    policies: PolicySet,
    checked: readonly PolicyDraft[],
  ): Promise<ValidationContext> {
    const services = new Map<string, KnownService>();
    const read = new Set<string>();
    while (true) {
      const asked = new Set<string>();
      const recorder = new RecordingMap(services, asked);
      for (const draft of checked) checkPolicy(draft, { services: recorder, policies });
      const missing = [...asked].filter((k) => !read.has(k));
      if (missing.length === 0) return { services, policies };
      await Promise.all(missing.map(async (key) => {
        read.add(key);
        const service = await this.#o.store.get("service", key);
        if (service) services.set(key, { ports: service.ports });
      }));
    }
  }

  async #refuse(
    documents: readonly unknown[],
    options: WriteOptions,
    problems: readonly FieldProblem[],
    status: number,
  ): Promise<void> {
    if (options.dryRun) return;
    const detail = problems.slice(0, 5).map((p) => `${p.pointer || "/"}: ${p.message}`).join("; ") +
      (problems.length > 5 ? ` (and ${problems.length - 5} more)` : "");
    for (const doc of documents) {
      await this.#audit(
        options.rollback ? "rollback" : "apply",
        identify(doc),
        options,
        "refused",
        status,
        null,
        detail,
      );
    }
  }

  async #audit(
    action: string,
    ref: { kind: string; metadata: { namespace?: string; name?: string } },
    options: WriteOptions,
    outcome: "ok" | "refused",
    status: number,
    revision: number | null,
    detail: string,
  ): Promise<void> {
    if (options.dryRun) return;
    await this.#o.store.appendAudit({
      at: new Date().toISOString(),
      actor: options.actor,
      action,
      kind: ref.kind,
      namespace: ref.metadata.namespace ?? "",
      name: ref.metadata.name ?? "",
      outcome,
      status,
      revision,
      detail,
    });
  }
}

/** The services read so far, noting every key a check asks for. */
class RecordingMap extends Map<string, KnownService> {
  readonly #asked: Set<string>;
  constructor(known: ReadonlyMap<string, KnownService>, asked: Set<string>) {
    super(known);
    this.#asked = asked;
  }
  override get(key: string): KnownService | undefined {
    this.#asked.add(key);
    return super.get(key);
  }
  override has(key: string): boolean {
    this.#asked.add(key);
    return super.has(key);
  }
}
