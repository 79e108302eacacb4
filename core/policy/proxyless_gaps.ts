/**
 * What a proxyless gRPC proxy cannot honour of the policies that apply to
 * it, said instead of silently dropped (issue 15 item 4). The generators
 * leave these parts out or turn them into what gRPC reads
 * (`xds/generate/route_rules.ts`, `destination.ts`,
 * `proxyless_security.ts`); `explain` reports them per policy and field,
 * and `docs/policies.md` (Sidecars and proxyless gRPC clients) lists them.
 * The measure is `@grpc/grpc-js-xds` 1.14.
 */
import {
  authorizationPoliciesFor,
  destinationPolicyFor,
  type PolicyIndex,
  type ProxyServices,
  rateLimitFor,
  trafficRouteFor,
} from "./match.ts";
import type { DestinationPolicySpec, Policy, PolicyKind } from "./model.ts";

/** One part of a policy a proxyless proxy does not apply as written. */
export interface ProxylessGap {
  kind: PolicyKind;
  namespace: string;
  name: string;
  /** The field, as a JSON pointer into the policy's `spec`. */
  field: string;
  /** What happens instead. */
  effect: string;
}

function gap(p: Policy, field: string, effect: string): ProxylessGap {
  return { kind: p.kind, namespace: p.metadata.namespace, name: p.metadata.name, field, effect };
}

const LEFT_OUT = "left out: gRPC has no such route action";

function routeGaps(p: Policy<"TrafficRoute">): ProxylessGap[] {
  const out: ProxylessGap[] = [];
  p.spec.rules.forEach((rule, i) => {
    const at = `/rules/${i}`;
    for (const field of ["mirror", "requestHeaders", "responseHeaders", "rewrite"] as const) {
      if (rule[field] !== undefined) out.push(gap(p, `${at}/${field}`, LEFT_OUT));
    }
    if (rule.redirect) {
      out.push(gap(p, `${at}/redirect`, "an abort with the redirect's status: gRPC cannot follow"));
    }
    if (rule.retries?.perTryTimeout !== undefined) {
      out.push(gap(p, `${at}/retries/perTryTimeout`, "ignored by gRPC"));
    }
    if (rule.retries?.on?.includes("retriable-4xx")) {
      out.push(gap(p, `${at}/retries/on`, "retriable-4xx has no gRPC status: dropped"));
    }
  });
  return out;
}

function destinationGaps(p: Policy<"DestinationPolicy">): ProxylessGap[] {
  const out: ProxylessGap[] = [];
  const settings = (
    at: string,
    s: Pick<DestinationPolicySpec, "loadBalancer" | "connectionPool">,
  ) => {
    const algorithm = s.loadBalancer?.algorithm;
    if (algorithm && !["ROUND_ROBIN", "RING_HASH"].includes(algorithm)) {
      out.push(gap(
        p,
        `${at}/loadBalancer/algorithm`,
        `${algorithm}: gRPC rejects the clusters (NACK) and keeps its last configuration`,
      ));
    }
    if (s.loadBalancer?.hash?.cookie) {
      out.push(gap(p, `${at}/loadBalancer/hash/cookie`, "no gRPC form: calls hash at random"));
    }
    if (s.loadBalancer?.hash?.sourceIp) {
      out.push(
        gap(p, `${at}/loadBalancer/hash/sourceIp`, "hashes the client's channel instead"),
      );
    }
    for (
      const field of [
        "maxConnections",
        "maxPendingRequests",
        "maxRetries",
        "connectTimeout",
      ] as const
    ) {
      if (s.connectionPool?.[field] !== undefined) {
        out.push(gap(p, `${at}/connectionPool/${field}`, "ignored by gRPC (only maxRequests)"));
      }
    }
  };
  settings("", p.spec);
  p.spec.subsets?.forEach((s, i) => settings(`/subsets/${i}`, s));
  p.spec.ports?.forEach((s, i) => settings(`/ports/${i}`, s));
  return out;
}

/**
 * The gaps of the policies that apply to a proxyless proxy: those of the
 * services it calls (`outbound`) and of the gRPC services its node's
 * proxyless servers serve (`inbound`), and MeshConfig's.
 */
export function proxylessGaps(index: PolicyIndex, proxy: ProxyServices): ProxylessGap[] {
  const out: ProxylessGap[] = [];
  const mesh = index.set.meshConfig;
  const permissive = mesh?.spec.mtls?.mode === "PERMISSIVE";
  if (mesh && permissive) {
    out.push(gap(
      mesh,
      "/mtls/mode",
      "PERMISSIVE is plaintext for proxyless gRPC: gRPC cannot tell TLS from plaintext on one port",
    ));
  }
  if (mesh?.spec.pathNormalization) {
    out.push(gap(mesh, "/pathNormalization", "not applied: gRPC servers do not normalize paths"));
  }
  const seen = new Set<string>();
  const once = (p: Policy, list: ProxylessGap[]) => {
    const key = `${p.kind}/${p.metadata.namespace}/${p.metadata.name}`;
    if (seen.has(key)) return;
    seen.add(key);
    out.push(...list);
  };
  for (const s of proxy.outbound) {
    const route = trafficRouteFor(index, s.namespace, s.service);
    if (route) once(route, routeGaps(route));
    const dest = destinationPolicyFor(index, s.namespace, s.service);
    if (dest) once(dest, destinationGaps(dest));
  }
  for (const s of proxy.inbound) {
    const limit = rateLimitFor(index, s.namespace, s.service);
    if (limit) {
      once(limit, [
        gap(limit, "", "not enforced: gRPC servers have no local rate limit filter"),
      ]);
    }
    if (!permissive) continue;
    for (const p of authorizationPoliciesFor(index, s.namespace, s.service)) {
      const byIdentity = (p.spec.rules ?? []).some((r) =>
        r.from?.some((f) => f.identities || f.notIdentities || f.namespaces || f.notNamespaces)
      );
      if (byIdentity) {
        once(p, [gap(
          p,
          "/rules",
          "identities and namespaces cannot match: in PERMISSIVE, proxyless callers have no certificate",
        )]);
      }
    }
  }
  return out;
}
