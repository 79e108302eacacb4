/**
 * Pass 2 of policy validation (see `validate.ts`): a parsed draft against
 * the rest of the mesh, the services it names and the policies as they will
 * be once the batch is applied, with warnings for what is legal but likely a
 * mistake (a rule that can never match, a fault that never fires).
 */
import type { z } from "zod";
import type { FieldProblem } from "../errors.ts";
import type { Protocol } from "../model.ts";
import { type Path, problem, quoted } from "./field_problem.ts";
import { destinationPolicyFor, indexPolicies, type PolicyIndex } from "./match.ts";
import {
  type AuthorizationPolicySpec,
  type DestinationPolicySpec,
  destinationSchema,
  matchEntries,
  MESH_CONFIG_NAME,
  type MeshConfigSpec,
  type Policy,
  type PolicyDraft,
  type PolicySet,
  type RateLimitSpec,
  type RouteMatch,
  type TrafficRouteSpec,
} from "./model.ts";
import { coverage, coversAll } from "./shadowing.ts";

/** A registered service, as {@link checkPolicy} sees it. */
export interface KnownService {
  ports: readonly { port: number; protocol: Protocol }[];
}

/** What {@link checkPolicy} checks a draft against. */
export interface ValidationContext {
  /** Known services by `<namespace>/<name>`, with their ports. */
  services: ReadonlyMap<string, KnownService>;
  /** The policy set as it will be once the batch being validated is applied (includes this draft). */
  policies: PolicySet;
}

/** What {@link checkPolicy} found: errors refuse the write, warnings are shown with it. */
export interface PolicyCheck {
  errors: FieldProblem[];
  warnings: FieldProblem[];
}

/**
 * Checks a parsed draft against the services registered so far and the
 * policies as they will be after the batch (`ctx.policies` holds this draft
 * too). A missing service is only a warning: services register after the
 * policies that shape their traffic. An undefined subset is an error even
 * when the service has no DestinationPolicy at all: traffic sent to it would
 * be dropped.
 */
export function checkPolicy(draft: PolicyDraft, ctx: ValidationContext): PolicyCheck {
  const check: PolicyCheck = { errors: [], warnings: [] };
  const c = new Checker(ctx, draft.metadata.namespace, check);
  switch (draft.kind) {
    case "TrafficRoute":
      c.trafficRoute(draft.metadata.name, draft.spec);
      break;
    case "DestinationPolicy":
      c.destinationPolicy(draft.metadata.name, draft.spec);
      break;
    case "AuthorizationPolicy":
      c.authorizationPolicy(draft.spec);
      break;
    case "RateLimit":
      c.rateLimit(draft.metadata.name, draft.spec);
      break;
    case "MeshConfig":
      c.meshConfig(draft.spec);
      break;
  }
  return check;
}

/** The checks of {@link checkPolicy} for one draft, sharing its context and output. */
class Checker {
  readonly #ctx: ValidationContext;
  readonly #namespace: string;
  readonly #check: PolicyCheck;
  readonly #index: PolicyIndex;

  constructor(ctx: ValidationContext, namespace: string, check: PolicyCheck) {
    this.#ctx = ctx;
    this.#namespace = namespace;
    this.#check = check;
    this.#index = indexPolicies(ctx.policies);
  }

  #error(path: Path, message: string): void {
    this.#check.errors.push(problem(path, message));
  }

  #warn(path: Path, message: string): void {
    this.#check.warnings.push(problem(path, message));
  }

  /** The service, or a warning at `path` that it has not registered yet. */
  service(name: string, path: Path, namespace = this.#namespace): KnownService | undefined {
    const info = this.#ctx.services.get(`${namespace}/${name}`);
    if (!info) {
      this.#warn(
        path,
        `Service "${name}" does not exist in namespace "${namespace}" yet; the policy applies once it registers`,
      );
    }
    return info;
  }

  /** match.ts applies only one TrafficRoute, DestinationPolicy and RateLimit per service. */
  #unique<K extends "TrafficRoute" | "DestinationPolicy" | "RateLimit">(
    kind: K,
    others: readonly Policy<K>[],
    name: string,
    service: string,
  ): void {
    const other = others.find((p) =>
      p.metadata.namespace === this.#namespace && p.spec.service === service &&
      p.metadata.name !== name
    );
    if (other) {
      this.#error(
        ["spec", "service"],
        `Service "${service}" already has a ${kind}, "${other.metadata.name}": a service has at most one, so merge them`,
      );
    }
  }

  #portOf(info: KnownService, service: string, port: number, path: Path) {
    const found = info.ports.find((p) => p.port === port);
    if (!found) {
      const ports = info.ports.map((p) => p.port).join(", ");
      this.#error(
        path,
        `Service "${service}" has no port ${port}: ${
          ports ? `its ports are ${ports}` : "it has no ports"
        }`,
      );
    }
    return found;
  }

  trafficRoute(name: string, spec: TrafficRouteSpec): void {
    const info = this.service(spec.service, ["spec", "service"]);
    if (info && spec.port !== undefined) {
      const port = this.#portOf(info, spec.service, spec.port, ["spec", "port"]);
      if (port?.protocol === "tcp") {
        this.#error(
          ["spec", "port"],
          `Port ${spec.port} of service "${spec.service}" is tcp: a TrafficRoute needs an http, http2 or grpc port`,
        );
      }
    } else if (info && info.ports.length > 0 && info.ports.every((p) => p.protocol === "tcp")) {
      this.#error(
        ["spec", "service"],
        `Service "${spec.service}" has only tcp ports: a TrafficRoute needs an http, http2 or grpc port`,
      );
    }
    this.#unique("TrafficRoute", this.#ctx.policies.trafficRoutes, name, spec.service);
    spec.rules.forEach((rule, i) => {
      const at = ["spec", "rules", i];
      (rule.split ?? []).forEach((entry, k) => {
        this.#destination(spec.service, entry, [...at, "split", k]);
      });
      if (rule.mirror) {
        this.#destination(spec.service, rule.mirror, [...at, "mirror"]);
        if (rule.mirror.percent === 0) {
          this.#warn([...at, "mirror", "percent"], "Percent 0 never mirrors a request");
        }
      }
      for (const part of ["delay", "abort"] as const) {
        if (rule.fault?.[part]?.percent === 0) {
          this.#warn([...at, "fault", part, "percent"], `Percent 0 never injects this ${part}`);
        }
      }
    });
    this.#shadowing(
      spec.rules.map((r) => matchEntries(r.match)),
      (i) => ["spec", "rules", i],
      "rule",
    );
  }

  /** A split or mirror target: its service (if another) and its subset. */
  #destination(
    own: string,
    dest: z.infer<typeof destinationSchema>,
    path: Path,
  ): void {
    const namespace = dest.namespace ?? this.#namespace;
    const service = dest.service ?? own;
    // The route's own service was checked at /spec/service.
    if (service !== own || namespace !== this.#namespace) {
      this.service(
        service,
        [...path, dest.service === undefined ? "namespace" : "service"],
        namespace,
      );
    }
    if (dest.subset === undefined) return;
    const policy = destinationPolicyFor(this.#index, namespace, service);
    const defined = (policy?.spec.subsets ?? []).map((s) => s.name);
    if (defined.includes(dest.subset)) return;
    const why = !policy
      ? "the service has no DestinationPolicy"
      : defined.length === 0
      ? `its DestinationPolicy "${policy.metadata.name}" defines no subsets`
      : `its DestinationPolicy "${policy.metadata.name}" defines ${quoted(defined)}`;
    this.#error(
      [...path, "subset"],
      `Subset "${dest.subset}" of service "${service}" in namespace "${namespace}" is not defined: ${why}`,
    );
  }

  destinationPolicy(name: string, spec: DestinationPolicySpec): void {
    const info = this.service(spec.service, ["spec", "service"]);
    this.#unique("DestinationPolicy", this.#ctx.policies.destinationPolicies, name, spec.service);
    if (info) {
      (spec.ports ?? []).forEach((p, i) => {
        this.#portOf(info, spec.service, p.port, ["spec", "ports", i, "port"]);
      });
      // A TCP proxy sees connections: it hashes on the client's address whatever the key.
      const hash = spec.loadBalancer?.hash;
      const key = hash?.header !== undefined ? "header" : hash?.cookie ? "cookie" : undefined;
      const tcp = info.ports.filter((p) => p.protocol === "tcp").map((p) => p.port);
      if (key && tcp.length > 0) {
        this.#warn(
          ["spec", "loadBalancer", "hash", key],
          `Port ${
            tcp.join(", ")
          } of service "${spec.service}" is tcp: its connections hash on the client's address, not on a ${key}`,
        );
      }
    }
    (spec.subsets ?? []).forEach((s, i) => {
      if (Object.keys(s.labels).length === 0) {
        this.#warn(
          ["spec", "subsets", i, "labels"],
          `Subset "${s.name}" has no labels: it selects every instance of the service`,
        );
      }
    });
    // The reverse of #destination: removing a subset a route still sends to would drop that traffic.
    if (destinationPolicyFor(this.#index, this.#namespace, spec.service)?.metadata.name !== name) {
      return;
    }
    const defined = (spec.subsets ?? []).map((s) => s.name);
    for (const route of this.#ctx.policies.trafficRoutes) {
      // One error per route and subset, however many of its rules send there.
      const known = new Set(defined);
      route.spec.rules.forEach((rule, i) => {
        for (const dest of [...rule.split ?? [], ...rule.mirror ? [rule.mirror] : []]) {
          const namespace = dest.namespace ?? route.metadata.namespace;
          const service = dest.service ?? route.spec.service;
          if (
            namespace !== this.#namespace || service !== spec.service ||
            dest.subset === undefined || known.has(dest.subset)
          ) continue;
          known.add(dest.subset);
          this.#error(
            ["spec", "subsets"],
            `Subset "${dest.subset}" is not defined, but TrafficRoute "${route.metadata.name}" in namespace "${route.metadata.namespace}" sends to it (rule ${i})`,
          );
        }
      });
    }
  }

  authorizationPolicy(spec: AuthorizationPolicySpec): void {
    if (spec.service !== undefined) this.service(spec.service, ["spec", "service"]);
    const weakened = pathNormalizationWeaknesses(this.#ctx.policies.meshConfig?.spec ?? {});
    if (weakened.length === 0) return;
    // One warning per policy, at its first path rule: the cause is the MeshConfig.
    for (const [i, rule] of (spec.rules ?? []).entries()) {
      for (const [j, op] of (rule.to ?? []).entries()) {
        const field = op.paths ? "paths" : op.notPaths ? "notPaths" : undefined;
        if (field === undefined) continue;
        this.#warn(
          ["spec", "rules", i, "to", j, field],
          `Path rules can be bypassed: MeshConfig "${MESH_CONFIG_NAME}" weakens path normalization (${
            weakened.map((w) => `${w.field} "${w.value}"`).join(", ")
          })`,
        );
        return;
      }
    }
  }

  meshConfig(spec: MeshConfigSpec): void {
    for (const w of pathNormalizationWeaknesses(spec)) {
      this.#warn(["spec", "pathNormalization", w.field], w.message);
    }
  }

  rateLimit(name: string, spec: RateLimitSpec): void {
    this.service(spec.service, ["spec", "service"]);
    this.#unique("RateLimit", this.#ctx.policies.rateLimits, name, spec.service);
    this.#shadowing(
      (spec.routes ?? []).map((r) => [r.match]),
      (i) => ["spec", "routes", i],
      "route",
    );
  }

  /**
   * Warns about each rule that an earlier rule (first match wins) leaves no
   * request to: one whose every match entry that earlier rule's entries
   * cover. Conservative: a rule covered only by several earlier rules
   * together is not reported.
   */
  #shadowing(
    matches: readonly (readonly RouteMatch[])[],
    path: (i: number) => Path,
    noun: string,
  ): void {
    matches.forEach((later, j) => {
      for (let i = 0; i < j; i++) {
        const earlier = matches[i]!;
        if (!coversAll(earlier, later)) continue;
        this.#warn(path(j), `Never matches: ${noun} ${i} ${coverage(earlier, later)}`);
        return;
      }
    });
  }
}

/** A `pathNormalization` setting that lets a path past path-based rules. */
interface PathWeakness {
  field: "normalization" | "escapedSlashes";
  value: string;
  message: string;
}

/**
 * The settings of MeshConfig's `pathNormalization` that weaken path-based
 * AuthorizationPolicy, RateLimit and route rules, each with the path that
 * gets past them. `DECODE` is not one: the rules see the decoded path, and
 * so does the app.
 */
export function pathNormalizationWeaknesses(spec: MeshConfigSpec): PathWeakness[] {
  const { normalization, escapedSlashes } = spec.pathNormalization ?? {};
  const out: PathWeakness[] = [];
  if (normalization === "NONE") {
    out.push({
      field: "normalization",
      value: normalization,
      message:
        `Normalization "NONE" weakens path rules: "/public/../admin/x" and "//admin/x" reach the app as sent, and a rule on "/admin/*" does not see them`,
    });
  } else if (normalization === "BASE") {
    out.push({
      field: "normalization",
      value: normalization,
      message:
        `Normalization "BASE" weakens path rules: "//admin/x" does not match a rule on "/admin/*", though many apps serve it as "/admin/x"`,
    });
  }
  if (escapedSlashes === "KEEP") {
    out.push({
      field: "escapedSlashes",
      value: escapedSlashes,
      message:
        `Escaped slashes "KEEP" weakens path rules: "/public/..%2Fadmin" matches a rule on "/public/*", though an app that decodes "%2F" serves "/admin"`,
    });
  }
  return out;
}
