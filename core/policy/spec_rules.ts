/**
 * The per-kind rules of pass 1 (see `validate.ts`): what a spec's schema
 * cannot say (exactly one of `exact`/`prefix`/`regex`, weights that sum to
 * 100, RE2-safe regexes, header names Envoy accepts, …), read from the typed
 * spec of one document on its own. Every problem is reported.
 */
import { z } from "zod";
import type { FieldProblem } from "../errors.ts";
import { parseSpiffeId } from "../spiffe_id.ts";
import { toPointer } from "../validate.ts";
import { type Path, problem, quoted } from "./field_problem.ts";
import {
  type AuthorizationPolicySpec,
  type DestinationPolicySpec,
  durationMs,
  type Fault,
  type HeaderOps,
  type LoadBalancer,
  matchEntries,
  type MeshConfigSpec,
  type PolicyKind,
  type RateLimitSpec,
  type RouteMatch,
  type RouteRule,
  type Specs,
  type StringMatch,
  type TrafficRouteSpec,
  type ValueMatch,
} from "./model.ts";
import { re2Problem } from "./re2.ts";

/** A spec with its kind, as the schema chosen by that kind parsed it. */
export type KindSpec = { [K in PolicyKind]: { kind: K; spec: Specs[K] } }[PolicyKind];

export function specProblems(typed: KindSpec): FieldProblem[] {
  switch (typed.kind) {
    case "TrafficRoute":
      return trafficRouteProblems(typed.spec);
    case "DestinationPolicy":
      return destinationPolicyProblems(typed.spec);
    case "AuthorizationPolicy":
      return authorizationProblems(typed.spec);
    case "RateLimit":
      return rateLimitProblems(typed.spec);
    case "MeshConfig":
      return meshConfigProblems(typed.spec);
  }
}

/** A field set that must have exactly one member, as Envoy's `oneof`s do. */
function exactlyOne(value: object, fields: readonly string[], path: Path): FieldProblem[] {
  const set = fields.filter((f) => (value as Record<string, unknown>)[f] !== undefined);
  if (set.length === 1) return [];
  const found = set.length === 0
    ? "none is set"
    : `${set.map((f) => `"${f}"`).join(" and ")} are set`;
  return [problem(path, `Set exactly one of ${quoted(fields)}: ${found}`)];
}

const STRING_MATCH_FIELDS = ["exact", "prefix", "regex"];
const VALUE_MATCH_FIELDS = [...STRING_MATCH_FIELDS, "present"];

function matchProblems(
  match: StringMatch | ValueMatch,
  fields: readonly string[],
  path: Path,
): FieldProblem[] {
  const out = exactlyOne(match, fields, path);
  if (match.regex !== undefined) {
    const bad = re2Problem(match.regex);
    if (bad) out.push(problem([...path, "regex"], bad));
  }
  return out;
}

/** A token (RFC 9110), lower-case as HTTP/2 requires; `:` starts a pseudo-header such as `:authority`. */
const HEADER_NAME = /^:?[!#$%&'*+\-.^_`|~0-9a-z]+$/;

function headerNameProblem(name: string): string | undefined {
  if (name !== name.toLowerCase()) {
    return `Header name "${name}" must be lower-case: "${name.toLowerCase()}"`;
  }
  if (!HEADER_NAME.test(name)) {
    return `Invalid header name "${name}": use letters, digits and !#$%&'*+-.^_\`|~`;
  }
  return undefined;
}

/** Envoy refuses a config that adds or removes these (`:-prefixed or host headers may not be modified`). */
function mutableHeaderProblem(name: string): string | undefined {
  const bad = headerNameProblem(name);
  if (bad) return bad;
  if (name.startsWith(":") || name === "host") {
    return `Header "${name}" cannot be modified: Envoy refuses to change pseudo-headers and "host"`;
  }
  return undefined;
}

function routeMatchProblems(match: RouteMatch, path: Path): FieldProblem[] {
  const out: FieldProblem[] = [];
  if (match.path) out.push(...matchProblems(match.path, STRING_MATCH_FIELDS, [...path, "path"]));
  for (const [name, value] of Object.entries(match.headers ?? {})) {
    const at = [...path, "headers", name];
    const bad = headerNameProblem(name);
    if (bad) out.push(problem(at, bad));
    out.push(...matchProblems(value, VALUE_MATCH_FIELDS, at));
  }
  for (const [name, value] of Object.entries(match.query ?? {})) {
    out.push(...matchProblems(value, VALUE_MATCH_FIELDS, [...path, "query", name]));
  }
  return out;
}

/** The characters Envoy's `HeaderValue.value` refuses (its HTTP_HEADER_VALUE rule), by name. */
const FORBIDDEN_IN_HEADER_VALUES: readonly [string, string][] = [
  ["\r", "CR"],
  ["\n", "LF"],
  ["\0", "NUL"],
];

/**
 * A header value Envoy would refuse: a CR or LF would end the header (and
 * start another), so Envoy NACKs the whole route table or listener instead.
 * A `%` needs no check: generators escape it (`envoy.ts`, `headerToSet`).
 */
function headerValueProblem(name: string, value: string): string | undefined {
  const found = FORBIDDEN_IN_HEADER_VALUES.filter(([c]) => value.includes(c)).map(([, n]) => n);
  if (found.length === 0) return undefined;
  return `The value of header "${name}" holds ${
    found.join(" and ")
  }: header values cannot contain CR, LF or NUL`;
}

/** Names and values of headers a policy sets. */
function headersToAddProblems(add: Record<string, string>, path: Path): FieldProblem[] {
  const out: FieldProblem[] = [];
  for (const [name, value] of Object.entries(add)) {
    const bad = mutableHeaderProblem(name) ?? headerValueProblem(name, value);
    if (bad) out.push(problem([...path, name], bad));
  }
  return out;
}

function headerOpsProblems(ops: HeaderOps, path: Path): FieldProblem[] {
  const out = headersToAddProblems(ops.add ?? {}, [...path, "add"]);
  (ops.remove ?? []).forEach((name, i) => {
    const bad = mutableHeaderProblem(name);
    if (bad) out.push(problem([...path, "remove", i], bad));
  });
  return out;
}

/** Parts of Envoy's route action, which a redirect replaces. */
const FORWARDING_FIELDS = ["split", "retries", "timeout", "mirror", "fault", "rewrite"] as const;

function ruleProblems(rule: RouteRule, path: Path): FieldProblem[] {
  const out: FieldProblem[] = [];
  if (Array.isArray(rule.match)) {
    rule.match.forEach((entry, k) => out.push(...routeMatchProblems(entry, [...path, "match", k])));
  } else if (rule.match) {
    out.push(...routeMatchProblems(rule.match, [...path, "match"]));
  }
  if (rule.split) {
    const sum = rule.split.reduce((total, entry) => total + entry.weight, 0);
    if (sum !== 100) out.push(problem([...path, "split"], `Weights must sum to 100, not ${sum}`));
  }
  if (rule.redirect) {
    for (const field of FORWARDING_FIELDS) {
      if (rule[field] !== undefined) {
        out.push(
          problem(
            [...path, field],
            `"${field}" cannot be combined with "redirect": a redirect answers without forwarding`,
          ),
        );
      }
    }
  }
  const prefix = rule.rewrite?.prefix;
  if (
    prefix !== undefined && prefix !== "/" && !rule.redirect &&
    matchEntries(rule.match).some((m) => !m.path)
  ) {
    // Envoy's prefix_rewrite swaps the matched prefix; with no path match that is `/`, which
    // only a rewrite to `/` leaves whole.
    out.push(problem(
      [...path, "rewrite", "prefix"],
      `"rewrite.prefix" needs a path match in every entry of "match": without one, Envoy would put "${prefix}" before the whole path`,
    ));
  }
  if (rule.fault) out.push(...faultProblems(rule.fault, [...path, "fault"]));
  if (rule.requestHeaders) {
    out.push(...headerOpsProblems(rule.requestHeaders, [...path, "requestHeaders"]));
  }
  if (rule.responseHeaders) {
    out.push(...headerOpsProblems(rule.responseHeaders, [...path, "responseHeaders"]));
  }
  return out;
}

function faultProblems(fault: Fault, path: Path): FieldProblem[] {
  if (!fault.delay && !fault.abort) return [problem(path, `Set "delay", "abort" or both`)];
  return fault.abort
    ? exactlyOne(fault.abort, ["httpStatus", "grpcStatus"], [...path, "abort"])
    : [];
}

function trafficRouteProblems(spec: TrafficRouteSpec): FieldProblem[] {
  return spec.rules.flatMap((rule, i) => ruleProblems(rule, ["spec", "rules", i]));
}

function loadBalancerProblems(lb: LoadBalancer, path: Path): FieldProblem[] {
  const out: FieldProblem[] = [];
  const hashed = lb.algorithm === "RING_HASH" || lb.algorithm === "MAGLEV";
  if (lb.hash && !hashed) {
    out.push(
      problem(
        [...path, "hash"],
        `"hash" works only with RING_HASH or MAGLEV, not ${lb.algorithm}`,
      ),
    );
  }
  if (!lb.hash && hashed) {
    // Envoy would hash a random number: no affinity, so the user meant something else.
    out.push(
      problem(
        path,
        `${lb.algorithm} needs "hash": the header, cookie or source IP that keeps a client on one instance`,
      ),
    );
  }
  if (lb.hash) {
    out.push(...exactlyOne(lb.hash, ["header", "cookie", "sourceIp"], [...path, "hash"]));
    const bad = lb.hash.header === undefined ? undefined : headerNameProblem(lb.hash.header);
    if (bad) out.push(problem([...path, "hash", "header"], bad));
  }
  if (lb.minRingSize !== undefined && lb.algorithm !== "RING_HASH") {
    out.push(
      problem(
        [...path, "minRingSize"],
        `"minRingSize" works only with RING_HASH, not ${lb.algorithm}`,
      ),
    );
  }
  return out;
}

/** Reports each repeated key at its own place, naming the first. */
function duplicateProblems<T>(
  items: readonly T[],
  keyOf: (item: T) => string | number,
  path: (i: number) => Path,
  message: (key: string | number, first: string) => string,
): FieldProblem[] {
  const seen = new Map<string | number, number>();
  const out: FieldProblem[] = [];
  items.forEach((item, i) => {
    const key = keyOf(item);
    const first = seen.get(key);
    if (first === undefined) seen.set(key, i);
    else out.push(problem(path(i), message(key, toPointer(path(first)))));
  });
  return out;
}

function destinationPolicyProblems(spec: DestinationPolicySpec): FieldProblem[] {
  const out: FieldProblem[] = [];
  if (spec.loadBalancer) {
    out.push(...loadBalancerProblems(spec.loadBalancer, ["spec", "loadBalancer"]));
  }
  const subsets = spec.subsets ?? [];
  out.push(...duplicateProblems(
    subsets,
    (s) => s.name,
    (i) => ["spec", "subsets", i, "name"],
    (name, first) => `Subset "${name}" is defined twice: first at ${first}`,
  ));
  subsets.forEach((s, i) => {
    if (s.loadBalancer) {
      out.push(...loadBalancerProblems(s.loadBalancer, ["spec", "subsets", i, "loadBalancer"]));
    }
  });
  const ports = spec.ports ?? [];
  out.push(...duplicateProblems(
    ports,
    (p) => p.port,
    (i) => ["spec", "ports", i, "port"],
    (port, first) => `Port ${port} is listed twice: first at ${first}`,
  ));
  ports.forEach((p, i) => {
    if (p.loadBalancer) {
      out.push(...loadBalancerProblems(p.loadBalancer, ["spec", "ports", i, "loadBalancer"]));
    }
  });
  return out;
}

/** An IP address or CIDR block (a bare address is a block of one). */
const ipBlockSchema = z.union([z.ipv4(), z.ipv6(), z.cidrv4(), z.cidrv6()]);

/** Authorization paths are Istio's: exact, `/prefix*`, `*suffix`, or `*` alone. */
function authorizationPathProblem(path: string): string | undefined {
  const inner = path.startsWith("*")
    ? path.slice(1)
    : path.endsWith("*")
    ? path.slice(0, -1)
    : path;
  if (inner.includes("*")) {
    return `Invalid path "${path}": "*" may only start it ("*.css"), end it ("/api/*") or stand alone`;
  }
  if (!path.startsWith("*") && !path.startsWith("/")) {
    return `Invalid path "${path}": must start with "/", or "*" for a suffix match`;
  }
  return undefined;
}

function identityProblems(ids: readonly string[] | undefined, path: Path): FieldProblem[] {
  return (ids ?? []).flatMap((id, k) =>
    parseSpiffeId(id) ? [] : [problem(
      [...path, k],
      `Invalid identity "${id}": expected spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`,
    )]
  );
}

function ipBlockProblems(blocks: readonly string[] | undefined, path: Path): FieldProblem[] {
  return (blocks ?? []).flatMap((block, k) =>
    ipBlockSchema.safeParse(block).success ? [] : [problem(
      [...path, k],
      `Invalid CIDR "${block}": expected an IPv4 or IPv6 address with an optional prefix length, e.g. 10.0.0.0/8 or fd00::/8`,
    )]
  );
}

function pathProblems(paths: readonly string[] | undefined, path: Path): FieldProblem[] {
  return (paths ?? []).flatMap((p, k) => {
    const bad = authorizationPathProblem(p);
    return bad ? [problem([...path, k], bad)] : [];
  });
}

function authorizationProblems(spec: AuthorizationPolicySpec): FieldProblem[] {
  const out: FieldProblem[] = [];
  (spec.rules ?? []).forEach((rule, i) => {
    (rule.from ?? []).forEach((source, j) => {
      const at = ["spec", "rules", i, "from", j];
      out.push(
        ...identityProblems(source.identities, [...at, "identities"]),
        ...identityProblems(source.notIdentities, [...at, "notIdentities"]),
        ...ipBlockProblems(source.ipBlocks, [...at, "ipBlocks"]),
        ...ipBlockProblems(source.notIpBlocks, [...at, "notIpBlocks"]),
      );
    });
    (rule.to ?? []).forEach((operation, j) => {
      const at = ["spec", "rules", i, "to", j];
      out.push(
        ...pathProblems(operation.paths, [...at, "paths"]),
        ...pathProblems(operation.notPaths, [...at, "notPaths"]),
      );
    });
  });
  return out;
}

function rateLimitProblems(spec: RateLimitSpec): FieldProblem[] {
  const out: FieldProblem[] = [];
  if (!spec.limit && !spec.routes?.length) {
    out.push(problem(["spec"], `Set "limit", "routes" or both: this RateLimit limits nothing`));
  }
  (spec.routes ?? []).forEach((route, i) => {
    out.push(...routeMatchProblems(route.match, ["spec", "routes", i, "match"]));
  });
  const headers = Object.keys(spec.response?.headers ?? {});
  out.push(...headersToAddProblems(spec.response?.headers ?? {}, ["spec", "response", "headers"]));
  if (headers.length > MAX_RATE_LIMIT_HEADERS) {
    out.push(problem(
      ["spec", "response", "headers"],
      `At most ${MAX_RATE_LIMIT_HEADERS} headers: Envoy's local rate limit takes no more`,
    ));
  }
  const status = spec.response?.status;
  if (status !== undefined && !ENVOY_ERROR_STATUSES.has(status)) {
    out.push(problem(
      ["spec", "response", "status"],
      `Envoy cannot answer ${status}: use one of its status codes, e.g. 429 or 503`,
    ));
  }
  return out;
}

/** Envoy's local rate limit takes at most this many response headers. */
const MAX_RATE_LIMIT_HEADERS = 10;

/** The 4xx and 5xx codes of Envoy's `envoy.type.v3.StatusCode`: what a local rate limit may answer. */
const ENVOY_ERROR_STATUSES: ReadonlySet<number> = new Set([
  400,
  401,
  402,
  403,
  404,
  405,
  406,
  407,
  408,
  409,
  410,
  411,
  412,
  413,
  414,
  415,
  416,
  417,
  421,
  422,
  423,
  424,
  426,
  428,
  429,
  431,
  500,
  501,
  502,
  503,
  504,
  505,
  506,
  507,
  508,
  510,
  511,
]);

function meshConfigProblems(spec: MeshConfigSpec): FieldProblem[] {
  const { debounce, maxDelay } = spec.push ?? {};
  if (
    debounce !== undefined && maxDelay !== undefined && durationMs(maxDelay) < durationMs(debounce)
  ) {
    return [problem(
      ["spec", "push", "maxDelay"],
      `"maxDelay" must be at least "debounce": "${maxDelay}" is shorter than "${debounce}"`,
    )];
  }
  return [];
}
