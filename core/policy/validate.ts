/**
 * Policy validation, in two passes as a compiler does them:
 *
 * 1. {@link parsePolicy} reads one document on its own: its shape (the zod
 *    schemas of `model.ts`), then what the schemas cannot say (exactly one
 *    of `exact`/`prefix`/`regex`, weights that sum to 100, RE2-safe regexes,
 *    …). Meaning is checked only once the shape is right, since it reads
 *    typed fields; within a pass, every problem is reported.
 * 2. {@link checkPolicy} reads a parsed draft against the rest of the mesh:
 *    the services registered so far, and the policies as they will be once
 *    the batch is applied. It also warns about what is legal but likely a
 *    mistake (a rule that can never match, a fault that never fires).
 *
 * Every problem is located by a JSON pointer from the document's root, so
 * the CLI and the REST API can point at the offending line.
 */
import { z } from "zod";
import type { FieldProblem } from "../errors.ts";
import type { Protocol } from "../model.ts";
import { parseSpiffeId } from "../spiffe_id.ts";
import { toPointer, zodProblems } from "../validate.ts";
import { destinationPolicyFor, indexPolicies, type PolicyIndex } from "./match.ts";
import {
  type AuthorizationPolicySpec,
  type DestinationPolicySpec,
  destinationSchema,
  durationMs,
  type Fault,
  type HeaderOps,
  type LoadBalancer,
  matchEntries,
  MESH_CONFIG_NAME,
  type MeshConfigSpec,
  type Policy,
  POLICY_KINDS,
  type PolicyDraft,
  policyInputSchema,
  type PolicyKind,
  type PolicySet,
  type RateLimitSpec,
  type RouteMatch,
  type RouteRule,
  SPEC_SCHEMAS,
  type Specs,
  type StringMatch,
  type TrafficRouteSpec,
  type ValueMatch,
} from "./model.ts";
import { re2Problem } from "./re2.ts";

/** What {@link parsePolicy} returns: a draft, or every problem found. */
export type ParseResult =
  | { draft: PolicyDraft; problems: [] }
  | { draft: null; problems: FieldProblem[] };

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

type Path = readonly (string | number)[];

function problem(path: Path, message: string): FieldProblem {
  return { pointer: toPointer(path), message };
}

function quoted(names: readonly string[]): string {
  return names.map((n) => `"${n}"`).join(", ");
}

// Pass 1: one document on its own.

/**
 * Parses a policy document as written (REST body or one YAML document of
 * `ironmesh apply -f`) into a draft: the namespace defaults to
 * `defaultNamespace`, labels to `{}`, and the spec is kept as written
 * (durations stay text). MeshConfig is named `mesh` and has no namespace
 * (stored as `""`).
 */
export function parsePolicy(input: unknown, defaultNamespace = "default"): ParseResult {
  const envelope = policyInputSchema.safeParse(withoutEmptyMeshNamespace(input));
  // The envelope's `spec` is `unknown`; a missing one is reported by the spec's own schema below.
  const problems = envelope.success
    ? []
    : zodProblems(envelope.error).filter((p) => p.pointer !== "/spec");
  // A bad envelope (say, a misspelt name) should not hide the spec's problems.
  const kind = envelope.success ? envelope.data.kind : kindOf(input);
  if (kind === undefined) return { draft: null, problems };
  if (envelope.success && kind === "MeshConfig") {
    const { name, namespace } = envelope.data.metadata;
    if (name !== MESH_CONFIG_NAME) {
      problems.push(
        problem(["metadata", "name"], `A MeshConfig must be named "mesh", not "${name}"`),
      );
    }
    if (namespace !== undefined) {
      problems.push(
        problem(
          ["metadata", "namespace"],
          `A MeshConfig has no namespace: remove "${namespace}"`,
        ),
      );
    }
  }
  const spec = SPEC_SCHEMAS[kind].safeParse(isRecord(input) ? input.spec : undefined);
  if (!spec.success) {
    problems.push(...zodProblems(new z.ZodError(unionIssues(spec.error.issues)), ["spec"]));
    return { draft: null, problems };
  }
  // The schema was chosen by `kind`, so the pair is consistent.
  const typed = { kind, spec: spec.data } as KindSpec;
  problems.push(...specProblems(typed));
  if (!envelope.success || problems.length > 0) return { draft: null, problems };
  const { name, namespace, labels } = envelope.data.metadata;
  const draft = {
    ...typed,
    metadata: {
      name,
      namespace: kind === "MeshConfig" ? "" : namespace ?? defaultNamespace,
      labels: labels ?? {},
    },
  } as PolicyDraft;
  return { draft, problems: [] };
}

type Issue = z.core.$ZodIssue;

/** An issue of a branch that refused the value's type (an object where a list may go). */
function isTypeMismatch(issue: Issue): boolean {
  return issue.code === "invalid_type" && issue.path.length === 0;
}

/**
 * zod reports a union (a rule's `match`: one match or a list) whose value
 * fails past the type check as a bare "Invalid input" at the union, with
 * each branch's issues inside. The value's type picks the branch it was
 * meant for, so its issues are reported instead, each at its own field; a
 * value of no branch's type is named with the types it may have.
 */
function unionIssues(issues: readonly Issue[]): Issue[] {
  return issues.flatMap((issue): Issue[] => {
    if (issue.code !== "invalid_union" || issue.errors.length === 0) return [issue];
    const meant = issue.errors.filter((branch) =>
      !(branch.length === 1 && isTypeMismatch(branch[0]!))
    );
    if (meant.length === 1) {
      return unionIssues(meant[0]!).map((i) => ({ ...i, path: [...issue.path, ...i.path] }));
    }
    if (meant.length > 0) return [issue];
    const expected = issue.errors.map((branch) => (branch[0] as { expected?: string }).expected);
    const received = /received (\w+)$/.exec(issue.errors[0]![0]!.message)?.[1];
    return [{
      ...issue,
      message: `Invalid input: expected ${expected.join(" or ")}${
        received === undefined ? "" : `, received ${received}`
      }`,
    }];
  });
}

type KindSpec = { [K in PolicyKind]: { kind: K; spec: Specs[K] } }[PolicyKind];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function kindOf(input: unknown): PolicyKind | undefined {
  return isRecord(input) ? POLICY_KINDS.find((k) => k === input.kind) : undefined;
}

/** MeshConfig has no namespace: reads return `namespace: ""`, which `apply` may send back. */
function withoutEmptyMeshNamespace(input: unknown): unknown {
  if (
    !isRecord(input) || input.kind !== "MeshConfig" || !isRecord(input.metadata) ||
    input.metadata.namespace !== ""
  ) return input;
  const { namespace: _, ...metadata } = input.metadata;
  return { ...input, metadata };
}

function specProblems(typed: KindSpec): FieldProblem[] {
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

// Pass 2: a draft against the rest of the mesh.

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

function isCatchAll(m: RouteMatch): boolean {
  return !m.path && !m.methods && Object.keys(m.headers ?? {}).length === 0 &&
    Object.keys(m.query ?? {}).length === 0;
}

/** True when every request one of `later`'s entries matches, one of `earlier`'s matches too. */
function coversAll(earlier: readonly RouteMatch[], later: readonly RouteMatch[]): boolean {
  return later.every((b) => earlier.some((a) => covers(a, b)));
}

/** Why `earlier`'s entries match every request `later`'s match (they do). */
function coverage(earlier: readonly RouteMatch[], later: readonly RouteMatch[]): string {
  if (earlier.some(isCatchAll)) return "matches every request";
  if (coversAll(later, earlier)) return "has the same match";
  const [only] = earlier;
  const { path, ...rest } = only ?? {};
  if (earlier.length === 1 && path?.prefix !== undefined && isCatchAll(rest)) {
    return `matches every path starting with "${path.prefix}"`;
  }
  return "matches every request this one matches";
}

/** True when every request `b` matches is matched by `a`, judged by the text of the conditions. */
function covers(a: RouteMatch, b: RouteMatch): boolean {
  if (isCatchAll(a)) return true;
  if (a.path && !(b.path && valueCovers(a.path, b.path))) return false;
  const methods = a.methods;
  if (methods && !(b.methods && b.methods.every((m) => methods.includes(m)))) return false;
  return mapCovers(a.headers, b.headers) && mapCovers(a.query, b.query);
}

function mapCovers(
  a: Record<string, ValueMatch> | undefined,
  b: Record<string, ValueMatch> | undefined,
): boolean {
  return Object.entries(a ?? {}).every(([name, match]) => {
    const other = b?.[name];
    return other !== undefined && valueCovers(match, other);
  });
}

/** True when every value `b` accepts, `a` accepts too. Regexes are compared as text. */
function valueCovers(a: ValueMatch, b: ValueMatch): boolean {
  if (a.present !== undefined) return a.present ? b.present !== false : b.present === false;
  if (a.exact !== undefined) return b.exact === a.exact;
  if (a.prefix !== undefined) return (b.prefix ?? b.exact)?.startsWith(a.prefix) ?? false;
  return a.regex !== undefined && b.regex === a.regex;
}
