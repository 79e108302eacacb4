/**
 * Policy documents for tests: builders, and the table of invalid documents
 * with the exact problems each must produce, shared by the validation unit
 * tests and the REST API tests (which check that none of them stores
 * anything).
 */
import type { FieldProblem } from "../errors.ts";
import { API_VERSION } from "./model.ts";

export function doc(
  kind: string,
  spec: unknown,
  metadata: Record<string, unknown> = { name: "echo" },
) {
  return { apiVersion: API_VERSION, kind, metadata, spec };
}

export function route(...rules: unknown[]) {
  return doc("TrafficRoute", { service: "echo", rules });
}

export function p(pointer: string, message: string): FieldProblem {
  return { pointer, message };
}

const INVALID_METHOD =
  'Invalid option: expected one of "GET"|"HEAD"|"POST"|"PUT"|"DELETE"|"PATCH"|"OPTIONS"|"CONNECT"|"TRACE"';

export const notRegistered = (name: string) =>
  `Service "${name}" does not exist in namespace "default" yet; the policy applies once it registers`;

/** Invalid documents, each with every problem it must produce. */
export const INVALID: { name: string; input: unknown; problems: FieldProblem[] }[] = [
  {
    name: "not an object",
    input: "TrafficRoute",
    problems: [p("", "Invalid input: expected object, received string")],
  },
  {
    name: "unknown kind",
    input: doc("Gateway", {}),
    problems: [
      p(
        "/kind",
        'Invalid option: expected one of "TrafficRoute"|"DestinationPolicy"|"AuthorizationPolicy"|"RateLimit"|"MeshConfig"',
      ),
    ],
  },
  {
    name: "envelope and spec problems together, unknown fields at their own path",
    input: {
      apiVersion: "v2",
      kind: "TrafficRoute",
      metadata: { name: "Echo", colour: "red" },
      spec: { service: "echo", rules: [{ colour: "red" }] },
    },
    problems: [
      p("/apiVersion", 'Invalid input: expected "ironmesh.io/v1"'),
      p(
        "/metadata/name",
        "Must be a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit",
      ),
      p("/metadata/colour", 'Unknown field "colour"'),
      p("/spec/rules/0/colour", 'Unknown field "colour"'),
    ],
  },
  {
    name: "missing spec",
    input: { kind: "TrafficRoute", metadata: { name: "echo" } },
    problems: [p("/spec", "Invalid input: expected object, received undefined")],
  },
  {
    name: "bad label and empty rules",
    input: doc("TrafficRoute", { service: "echo", rules: [] }, {
      name: "echo",
      labels: { "-x": "" },
    }),
    problems: [
      p(
        "/metadata/labels/-x",
        `Invalid label key "-x": the name must be 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`,
      ),
      p("/spec/rules", "Too small: expected array to have >=1 items"),
    ],
  },
  {
    name: "weight out of range and bad duration",
    input: route({ split: [{ weight: 110 }], timeout: "2 seconds" }),
    problems: [
      p("/spec/rules/0/split/0/weight", "Too big: expected number to be <=100"),
      p(
        "/spec/rules/0/timeout",
        'Invalid duration "2 seconds": use a number with a unit, e.g. 500ms, 5s, 1m',
      ),
    ],
  },
  {
    name: "MeshConfig with another name and a namespace",
    input: doc("MeshConfig", {}, { name: "global", namespace: "prod" }),
    problems: [
      p("/metadata/name", 'A MeshConfig must be named "mesh", not "global"'),
      p("/metadata/namespace", 'A MeshConfig has no namespace: remove "prod"'),
    ],
  },
  {
    name: "string match with no field, and with two",
    input: route({ match: { path: {} } }, { match: { path: { exact: "/a", prefix: "/a" } } }),
    problems: [
      p("/spec/rules/0/match/path", 'Set exactly one of "exact", "prefix", "regex": none is set'),
      p(
        "/spec/rules/1/match/path",
        'Set exactly one of "exact", "prefix", "regex": "exact" and "prefix" are set',
      ),
    ],
  },
  {
    name: "value match with two fields, upper-case and invalid header names",
    input: route({
      match: {
        headers: { "x-user": { exact: "a", present: true }, "X-Team": { prefix: "a" }, "x y": {} },
        query: { q: { present: false, regex: "a" } },
      },
    }),
    problems: [
      p(
        "/spec/rules/0/match/headers/x-user",
        'Set exactly one of "exact", "prefix", "regex", "present": "exact" and "present" are set',
      ),
      p("/spec/rules/0/match/headers/X-Team", 'Header name "X-Team" must be lower-case: "x-team"'),
      p(
        "/spec/rules/0/match/headers/x y",
        `Invalid header name "x y": use letters, digits and !#$%&'*+-.^_\`|~`,
      ),
      p(
        "/spec/rules/0/match/headers/x y",
        'Set exactly one of "exact", "prefix", "regex", "present": none is set',
      ),
      p(
        "/spec/rules/0/match/query/q",
        'Set exactly one of "exact", "prefix", "regex", "present": "regex" and "present" are set',
      ),
    ],
  },
  {
    name: "regexes RE2 refuses or that do not compile",
    input: route(
      { match: { path: { regex: "/api/(?!internal)" } } },
      { match: { headers: { "x-id": { regex: "(a)\\1" } }, query: { v: { regex: "[a" } } } },
    ),
    problems: [
      p(
        "/spec/rules/0/match/path/regex",
        'Invalid regex "/api/(?!internal)": lookahead ("(?!") is not supported by RE2',
      ),
      p(
        "/spec/rules/1/match/headers/x-id/regex",
        'Invalid regex "(a)\\1": backreferences ("\\1") are not supported by RE2',
      ),
      p("/spec/rules/1/match/query/v/regex", 'Invalid regex "[a": Unterminated character class'),
    ],
  },
  {
    // RE2 measures 35,823 instructions; Envoy refuses more than the bootstrap's 32768.
    name: "a regex whose RE2 program is too large for Envoy",
    input: route({ match: { headers: { "x-name": { regex: "\\p{L}{1,30}" } } } }),
    problems: [
      p(
        "/spec/rules/0/match/headers/x-name/regex",
        'Invalid regex "\\p{L}{1,30}": its RE2 program may take 44793 instructions, over Envoy\'s limit of 32768: use smaller repeat counts or narrower classes',
      ),
    ],
  },
  {
    name: "match lists: empty, entries of the wrong shape, and neither a match nor a list",
    input: route(
      { match: [] },
      { match: [{ methods: ["FETCH"] }, { colour: "red" }] },
      { match: "/api" },
      { match: { methods: ["FETCH"] } },
    ),
    problems: [
      p(
        "/spec/rules/0/match",
        'An empty match list matches nothing: list at least one match, or omit "match" to match every request',
      ),
      p("/spec/rules/1/match/0/methods/0", INVALID_METHOD),
      p("/spec/rules/1/match/1/colour", 'Unknown field "colour"'),
      p("/spec/rules/2/match", "Invalid input: expected object or array, received string"),
      p("/spec/rules/3/match/methods/0", INVALID_METHOD),
    ],
  },
  {
    name: "match list entries, each checked at its own place",
    input: route({
      match: [
        { path: { exact: "/a", prefix: "/a" } },
        {
          headers: { "x-a": { exact: "1", present: true }, "X-B": { present: true } },
          query: { q: { regex: "(?=a)" } },
        },
      ],
    }),
    problems: [
      p(
        "/spec/rules/0/match/0/path",
        'Set exactly one of "exact", "prefix", "regex": "exact" and "prefix" are set',
      ),
      p(
        "/spec/rules/0/match/1/headers/x-a",
        'Set exactly one of "exact", "prefix", "regex", "present": "exact" and "present" are set',
      ),
      p("/spec/rules/0/match/1/headers/X-B", 'Header name "X-B" must be lower-case: "x-b"'),
      p(
        "/spec/rules/0/match/1/query/q/regex",
        'Invalid regex "(?=a)": lookahead ("(?=") is not supported by RE2',
      ),
    ],
  },
  {
    name: "weights that do not sum to 100",
    input: route(
      { split: [{ subset: "v1", weight: 80 }, { subset: "v2", weight: 10 }] },
      { split: [{ subset: "v1", weight: 60 }, { subset: "v2", weight: 60 }] },
    ),
    problems: [
      p("/spec/rules/0/split", "Weights must sum to 100, not 90"),
      p("/spec/rules/1/split", "Weights must sum to 100, not 120"),
    ],
  },
  {
    name: "a redirect with forwarding settings",
    input: route({
      redirect: { scheme: "https" },
      split: [{ weight: 100 }],
      timeout: "1s",
      retries: { attempts: 1 },
      mirror: { service: "shadow" },
      fault: { abort: { httpStatus: 500, percent: 1 } },
      rewrite: { prefix: "/" },
    }),
    problems: ["split", "retries", "timeout", "mirror", "fault", "rewrite"].map((f) =>
      p(
        `/spec/rules/0/${f}`,
        `"${f}" cannot be combined with "redirect": a redirect answers without forwarding`,
      )
    ),
  },
  {
    name: "a fault with nothing to inject, and an abort with two statuses",
    input: route({ fault: {} }, {
      fault: { abort: { httpStatus: 503, grpcStatus: 14, percent: 1 } },
    }, { fault: { abort: { percent: 1 } } }),
    problems: [
      p("/spec/rules/0/fault", 'Set "delay", "abort" or both'),
      p(
        "/spec/rules/1/fault/abort",
        'Set exactly one of "httpStatus", "grpcStatus": "httpStatus" and "grpcStatus" are set',
      ),
      p("/spec/rules/2/fault/abort", 'Set exactly one of "httpStatus", "grpcStatus": none is set'),
    ],
  },
  {
    name: "header operations on pseudo-headers, host and upper-case names",
    input: route({
      requestHeaders: { add: { ":path": "/x", "X-A": "1" }, remove: ["host"] },
      responseHeaders: { remove: [":status"] },
    }),
    problems: [
      p(
        "/spec/rules/0/requestHeaders/add/:path",
        'Header ":path" cannot be modified: Envoy refuses to change pseudo-headers and "host"',
      ),
      p("/spec/rules/0/requestHeaders/add/X-A", 'Header name "X-A" must be lower-case: "x-a"'),
      p(
        "/spec/rules/0/requestHeaders/remove/0",
        'Header "host" cannot be modified: Envoy refuses to change pseudo-headers and "host"',
      ),
      p(
        "/spec/rules/0/responseHeaders/remove/0",
        'Header ":status" cannot be modified: Envoy refuses to change pseudo-headers and "host"',
      ),
    ],
  },
  {
    name: "a prefix rewrite without a path match",
    input: route(
      { match: { headers: { "x-a": { exact: "1" } } }, rewrite: { prefix: "/v2" } },
      { rewrite: { prefix: "/v2" } },
      { match: [{ path: { prefix: "/a/" } }, { methods: ["GET"] }], rewrite: { prefix: "/b/" } },
      { match: { path: { regex: "/a/(.*)" } }, rewrite: { prefix: "/b/\\1" } },
    ),
    problems: [0, 1, 2].map((i) =>
      p(
        `/spec/rules/${i}/rewrite/prefix`,
        `"rewrite.prefix" needs a path match in every entry of "match": without one, Envoy would put "${
          i === 2 ? "/b/" : "/v2"
        }" before the whole path`,
      )
    ),
  },
  {
    name: "header values with CR, LF or NUL",
    input: route({
      requestHeaders: { add: { "x-a": "1\r\nx-injected: 1", "x-b": "ok 100%" } },
      responseHeaders: { add: { "x-c": "a\u0000b" } },
    }),
    problems: [
      p(
        "/spec/rules/0/requestHeaders/add/x-a",
        'The value of header "x-a" holds CR and LF: header values cannot contain CR, LF or NUL',
      ),
      p(
        "/spec/rules/0/responseHeaders/add/x-c",
        'The value of header "x-c" holds NUL: header values cannot contain CR, LF or NUL',
      ),
    ],
  },
  {
    name: "RING_HASH without hash, hash without a hashing algorithm",
    input: doc("DestinationPolicy", {
      service: "echo",
      loadBalancer: { algorithm: "RING_HASH" },
      subsets: [{
        name: "v1",
        labels: { version: "v1" },
        loadBalancer: { algorithm: "ROUND_ROBIN", hash: { sourceIp: true } },
      }],
    }),
    problems: [
      p(
        "/spec/loadBalancer",
        'RING_HASH needs "hash": the header, cookie or source IP that keeps a client on one instance',
      ),
      p(
        "/spec/subsets/0/loadBalancer/hash",
        '"hash" works only with RING_HASH or MAGLEV, not ROUND_ROBIN',
      ),
    ],
  },
  {
    name: "two hash keys, an upper-case hash header and minRingSize with MAGLEV",
    input: doc("DestinationPolicy", {
      service: "echo",
      loadBalancer: {
        algorithm: "MAGLEV",
        hash: { header: "X-User", sourceIp: true },
        minRingSize: 64,
      },
    }),
    problems: [
      p(
        "/spec/loadBalancer/hash",
        'Set exactly one of "header", "cookie", "sourceIp": "header" and "sourceIp" are set',
      ),
      p("/spec/loadBalancer/hash/header", 'Header name "X-User" must be lower-case: "x-user"'),
      p("/spec/loadBalancer/minRingSize", '"minRingSize" works only with RING_HASH, not MAGLEV'),
    ],
  },
  {
    name: "an empty hash",
    input: doc("DestinationPolicy", {
      service: "echo",
      ports: [{ port: 80, loadBalancer: { algorithm: "RING_HASH", hash: {} } }],
    }),
    problems: [
      p(
        "/spec/ports/0/loadBalancer/hash",
        'Set exactly one of "header", "cookie", "sourceIp": none is set',
      ),
    ],
  },
  {
    name: "duplicate subset names and ports",
    input: doc("DestinationPolicy", {
      service: "echo",
      subsets: [
        { name: "v1", labels: { version: "v1" } },
        { name: "v2", labels: { version: "v2" } },
        { name: "v1", labels: { version: "v1b" } },
      ],
      ports: [{ port: 8080 }, { port: 8080 }],
    }),
    problems: [
      p("/spec/subsets/2/name", 'Subset "v1" is defined twice: first at /spec/subsets/0/name'),
      p("/spec/ports/1/port", "Port 8080 is listed twice: first at /spec/ports/0/port"),
    ],
  },
  {
    name: "identities that are not workload SPIFFE IDs",
    input: doc("AuthorizationPolicy", {
      action: "ALLOW",
      rules: [{
        from: [{ identities: ["spiffe://mesh.local/web", "spiffe://mesh.local/ns/a/sa/b/c"] }],
      }],
    }),
    problems: [0, 1].map((k) =>
      p(
        `/spec/rules/0/from/0/identities/${k}`,
        `Invalid identity "${
          ["spiffe://mesh.local/web", "spiffe://mesh.local/ns/a/sa/b/c"][k]
        }": expected spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`,
      )
    ),
  },
  {
    name: "invalid CIDRs",
    input: doc("AuthorizationPolicy", {
      action: "DENY",
      rules: [{ from: [{ ipBlocks: ["10.0.0.0/33", "10.0.0.300", "fd00::/129", "010.0.0.0/8"] }] }],
    }),
    problems: ["10.0.0.0/33", "10.0.0.300", "fd00::/129", "010.0.0.0/8"].map((block, k) =>
      p(
        `/spec/rules/0/from/0/ipBlocks/${k}`,
        `Invalid CIDR "${block}": expected an IPv4 or IPv6 address with an optional prefix length, e.g. 10.0.0.0/8 or fd00::/8`,
      )
    ),
  },
  {
    name: 'authorization paths with a misplaced "*" or no leading "/"',
    input: doc("AuthorizationPolicy", {
      action: "ALLOW",
      rules: [{ to: [{ paths: ["/api/*/admin", "*/x*", "**", "api/v1"] }] }],
    }),
    problems: [
      ...["/api/*/admin", "*/x*", "**"].map((path, k) =>
        p(
          `/spec/rules/0/to/0/paths/${k}`,
          `Invalid path "${path}": "*" may only start it ("*.css"), end it ("/api/*") or stand alone`,
        )
      ),
      p(
        "/spec/rules/0/to/0/paths/3",
        'Invalid path "api/v1": must start with "/", or "*" for a suffix match',
      ),
    ],
  },
  {
    name: "negated sources and operations of the wrong shape",
    input: doc("AuthorizationPolicy", {
      action: "ALLOW",
      rules: [{
        from: [{ notIdentities: [], notNamespaces: ["Shop"], notIpBlocks: "10.0.0.0/8" }],
        to: [{ notPorts: [0], notMethods: ["FETCH"], notPaths: [] }],
      }],
    }),
    problems: [
      p("/spec/rules/0/from/0/notIdentities", "Too small: expected array to have >=1 items"),
      p(
        "/spec/rules/0/from/0/notNamespaces/0",
        "Must be a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit",
      ),
      p("/spec/rules/0/from/0/notIpBlocks", "Invalid input: expected array, received string"),
      p("/spec/rules/0/to/0/notPorts/0", "Too small: expected number to be >=1"),
      p("/spec/rules/0/to/0/notMethods/0", INVALID_METHOD),
      p("/spec/rules/0/to/0/notPaths", "Too small: expected array to have >=1 items"),
    ],
  },
  {
    name: "negated identities, CIDRs and paths, checked as the positive ones",
    input: doc("AuthorizationPolicy", {
      action: "DENY",
      rules: [{
        from: [{
          identities: ["spiffe://mesh.local/ns/a/sa/b"],
          notIdentities: ["spiffe://mesh.local/web"],
          notIpBlocks: ["10.0.0.0/8", "10.0.0.0/33"],
        }],
        to: [{ notPaths: ["/ok", "/a/*/b", "api"] }],
      }],
    }),
    problems: [
      p(
        "/spec/rules/0/from/0/notIdentities/0",
        'Invalid identity "spiffe://mesh.local/web": expected spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>',
      ),
      p(
        "/spec/rules/0/from/0/notIpBlocks/1",
        'Invalid CIDR "10.0.0.0/33": expected an IPv4 or IPv6 address with an optional prefix length, e.g. 10.0.0.0/8 or fd00::/8',
      ),
      p(
        "/spec/rules/0/to/0/notPaths/1",
        'Invalid path "/a/*/b": "*" may only start it ("*.css"), end it ("/api/*") or stand alone',
      ),
      p(
        "/spec/rules/0/to/0/notPaths/2",
        'Invalid path "api": must start with "/", or "*" for a suffix match',
      ),
    ],
  },
  {
    name: "a RateLimit without limit or routes",
    input: doc("RateLimit", { service: "echo", routes: [] }),
    problems: [p("/spec", 'Set "limit", "routes" or both: this RateLimit limits nothing')],
  },
  {
    name: "RateLimit routes and response headers",
    input: doc("RateLimit", {
      service: "echo",
      routes: [{
        match: {
          path: { prefix: "/a", regex: "(?<=a)" },
          headers: { "X-Plan": { exact: "free" } },
        },
        limit: { requests: 1, per: "1s" },
      }],
      response: { headers: { "Retry-After": "1", ":status": "503", "x-why": "slow\ndown" } },
    }),
    problems: [
      p(
        "/spec/routes/0/match/path",
        'Set exactly one of "exact", "prefix", "regex": "prefix" and "regex" are set',
      ),
      p(
        "/spec/routes/0/match/path/regex",
        'Invalid regex "(?<=a)": lookbehind ("(?<=") is not supported by RE2',
      ),
      p("/spec/routes/0/match/headers/X-Plan", 'Header name "X-Plan" must be lower-case: "x-plan"'),
      p(
        "/spec/response/headers/Retry-After",
        'Header name "Retry-After" must be lower-case: "retry-after"',
      ),
      p(
        "/spec/response/headers/:status",
        'Header ":status" cannot be modified: Envoy refuses to change pseudo-headers and "host"',
      ),
      p(
        "/spec/response/headers/x-why",
        'The value of header "x-why" holds LF: header values cannot contain CR, LF or NUL',
      ),
    ],
  },
  {
    name: "MeshConfig push.maxDelay shorter than debounce",
    input: doc("MeshConfig", { push: { debounce: "2s", maxDelay: "500ms" } }, { name: "mesh" }),
    problems: [
      p(
        "/spec/push/maxDelay",
        '"maxDelay" must be at least "debounce": "500ms" is shorter than "2s"',
      ),
    ],
  },
  {
    name: "MeshConfig duration out of range",
    input: doc("MeshConfig", { certificates: { ttl: "30s" } }, { name: "mesh" }),
    problems: [
      p(
        "/spec/certificates/ttl",
        'Duration "30s" is out of range: must be between 1m and 8784h',
      ),
    ],
  },
];
