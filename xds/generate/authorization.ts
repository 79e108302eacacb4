/**
 * AuthorizationPolicy and MeshConfig's `authorization.default` in Envoy
 * terms: RBAC filters on a sidecar's inbound listener. The policies come
 * from the shared match step (`core/policy/match.ts`).
 *
 * As in Istio, DENY beats ALLOW: a DENY filter runs first, then an ALLOW
 * filter, which exists when some ALLOW policy guards the service or the
 * mesh's default is DENY, and lets through only what an ALLOW rule matches.
 *
 * A `not…` field, as in Istio, matches when the request matches none of
 * its entries: RBAC's `not_id` or `not_rule` around the entries' OR.
 *
 * A TCP port sees connections, not requests: there, a rule's methods and
 * paths (`notMethods`, `notPaths` too) cannot be checked, and it fails
 * closed: an ALLOW rule that needs them never matches, and a DENY rule that
 * names them denies the whole port (its other conditions still apply).
 */
import { authorizationPoliciesFor } from "../../core/policy/match.ts";
import type { AuthorizationRule, Operation, Policy, Source } from "../../core/policy/model.ts";
import { anyOf, methodMatcher, TYPE } from "./envoy.ts";
import type { InboundEntry, JsonObject } from "./model.ts";
import type { PushContext } from "./push_context.ts";

type Action = "ALLOW" | "DENY";

/** A permission or principal that matches anything. */
const ANY: JsonObject = { any: true };
/** A permission that matches nothing. */
const NEVER: JsonObject = { not_rule: { any: true } };

/** Principals (`ids`) or permissions (`rules`): their sets are spelt alike. */
type Of = "ids" | "rules";

/** Any of `list` (not empty); `any` absorbs the rest. */
function or(list: JsonObject[], of: Of): JsonObject {
  if (list.includes(ANY)) return ANY;
  return list.length === 1 ? list[0]! : { [`or_${of}`]: { [of]: list } };
}

/** All of `list`; `any` adds nothing, and none at all is `any`. */
function and(list: JsonObject[], of: Of): JsonObject {
  const rest = list.filter((x) => x !== ANY);
  return rest.length === 0 ? ANY : rest.length === 1 ? rest[0]! : { [`and_${of}`]: { [of]: rest } };
}

/** The requests `x` does not match; `not` of a permission that never matches is `any`. */
function not(x: JsonObject, of: Of): JsonObject {
  if (x === NEVER) return ANY;
  return of === "ids" ? { not_id: x } : { not_rule: x };
}

/** `10.0.0.0/8` (or a bare address, one host) as a CidrRange. */
function cidrRange(block: string): JsonObject {
  const slash = block.indexOf("/");
  const address = slash < 0 ? block : block.slice(0, slash);
  const length = slash < 0 ? (address.includes(":") ? 128 : 32) : Number(block.slice(slash + 1));
  return { address_prefix: address, prefix_len: length };
}

/** Any of `ids` as the peer certificate's SPIFFE ID (a URI SAN). */
function identityPrincipal(ids: readonly string[]): JsonObject {
  return or(ids.map((id) => ({ authenticated: { principal_name: { exact: id } } })), "ids");
}

/** A SPIFFE ID in any of `namespaces` of the trust domain. */
function namespacePrincipal(namespaces: readonly string[], trustDomain: string): JsonObject {
  return or(
    namespaces.map((ns) => ({
      authenticated: { principal_name: { prefix: `spiffe://${trustDomain}/ns/${ns}/sa/` } },
    })),
    "ids",
  );
}

function addressPrincipal(blocks: readonly string[]): JsonObject {
  return or(blocks.map((b) => ({ direct_remote_ip: cidrRange(b) })), "ids");
}

/** Who a source is: the peer certificate's SPIFFE ID, or its address. */
function principal(source: Source, trustDomain: string): JsonObject {
  const fields: JsonObject[] = [];
  if (source.identities) fields.push(identityPrincipal(source.identities));
  if (source.notIdentities) fields.push(not(identityPrincipal(source.notIdentities), "ids"));
  if (source.namespaces) fields.push(namespacePrincipal(source.namespaces, trustDomain));
  if (source.notNamespaces) {
    fields.push(not(namespacePrincipal(source.notNamespaces, trustDomain), "ids"));
  }
  if (source.ipBlocks) fields.push(addressPrincipal(source.ipBlocks));
  if (source.notIpBlocks) fields.push(not(addressPrincipal(source.notIpBlocks), "ids"));
  return and(fields, "ids");
}

/** `/exact`, `/prefix/*`, `*suffix` or `*` as a URL path permission (the query string excluded). */
function pathPermission(path: string): JsonObject {
  if (path === "*") return ANY;
  const matcher = path.endsWith("*")
    ? { prefix: path.slice(0, -1) }
    : path.startsWith("*")
    ? { suffix: path.slice(1) }
    : { exact: path };
  return { url_path: { path: matcher } };
}

/** What the policies of one action compile against. */
interface Scope {
  entry: InboundEntry;
  /** The listener sees requests (HTTP), not only connections (TCP). */
  l7: boolean;
  action: Action;
  trustDomain: string;
}

/**
 * What an operation is about. Ports are service ports: an inbound listener
 * serves one, so a list naming it is the listener's own (inbound) port, and
 * a list that does not can never match here (so its `notPorts` always does).
 */
function permission(op: Operation, { entry, l7, action }: Scope): JsonObject {
  const port = (ports: readonly number[]) =>
    ports.includes(entry.appPort) ? { destination_port: entry.inboundPort } : NEVER;
  const paths = (list: readonly string[]) => or(list.map(pathPermission), "rules");
  const fields: JsonObject[] = [];
  if (op.ports) fields.push(port(op.ports));
  if (op.notPorts) fields.push(not(port(op.notPorts), "rules"));
  if (!l7 && (op.methods || op.paths || op.notMethods || op.notPaths)) {
    // Fail closed (see the module doc).
    if (action === "ALLOW") return NEVER;
  } else {
    if (op.methods) fields.push({ header: methodMatcher(op.methods) });
    if (op.notMethods) fields.push(not({ header: methodMatcher(op.notMethods) }, "rules"));
    if (op.paths) fields.push(paths(op.paths));
    if (op.notPaths) fields.push(not(paths(op.notPaths), "rules"));
  }
  return and(fields, "rules");
}

/** One rule as an RBAC policy: any `to` (OR) from any `from` (OR). */
function rbacPolicy(rule: AuthorizationRule, scope: Scope): JsonObject {
  return {
    permissions: rule.to ? rule.to.map((op) => permission(op, scope)) : [ANY],
    principals: rule.from ? rule.from.map((s) => principal(s, scope.trustDomain)) : [ANY],
  };
}

/**
 * The RBAC policies of the scope's action, keyed `<namespace>/<name>` or,
 * for a policy with several rules, `<namespace>/<name>[<i>]`. A policy
 * without rules matches nothing, as in Istio: an ALLOW without rules admits
 * no one (its presence alone turns the default to deny), a DENY without
 * rules denies no one. A rule `{}` matches every request.
 */
function rbacPolicies(
  policies: readonly Policy<"AuthorizationPolicy">[],
  scope: Scope,
): JsonObject {
  const out: JsonObject = {};
  for (const p of policies) {
    const name = `${p.metadata.namespace}/${p.metadata.name}`;
    const rules = p.spec.rules ?? [];
    for (const [i, rule] of rules.entries()) {
      out[rules.length === 1 ? name : `${name}[${i}]`] = rbacPolicy(rule, scope);
    }
  }
  return out;
}

/**
 * The RBAC filters of an inbound listener, DENY first: HTTP filters when
 * `l7`, network filters (before `tcp_proxy`) otherwise. None when nothing
 * guards the service and the mesh allows by default.
 */
export function rbacFilters(push: PushContext, entry: InboundEntry, l7: boolean): JsonObject[] {
  const policies = authorizationPoliciesFor(push.policies, entry.namespace, entry.service);
  const meshDenies = push.mesh.authorization?.default === "DENY";
  const out: JsonObject[] = [];
  for (const action of ["DENY", "ALLOW"] as const) {
    const mine = policies.filter((p) => p.spec.action === action);
    if (mine.length === 0 && !(action === "ALLOW" && meshDenies)) continue;
    const byName = rbacPolicies(mine, { entry, l7, action, trustDomain: push.view.trustDomain });
    const rules: JsonObject = {
      // ALLOW is the enum's zero value, which the wire leaves out; so is an empty map.
      ...(action === "DENY" ? { action } : {}),
      ...(Object.keys(byName).length > 0 ? { policies: byName } : {}),
    };
    const lower = action.toLowerCase();
    out.push(
      l7
        ? {
          name: `envoy.filters.http.rbac.${lower}`,
          typed_config: anyOf(TYPE.httpRbac, { rules, rules_stat_prefix: `${lower}_` }),
        }
        : {
          name: `envoy.filters.network.rbac.${lower}`,
          typed_config: anyOf(TYPE.networkRbac, { rules, stat_prefix: `${lower}_` }),
        },
    );
  }
  return out;
}
