/**
 * Generates `xds/proto/envoy_descriptor.json`: the protobuf schema of every
 * Envoy type the control plane encodes or decodes, as a protobufjs JSON
 * descriptor. The product ships as one bundled JS file with no `.proto` files
 * beside it, so the schema is compiled here, once, from the `.proto` files that
 * `@grpc/grpc-js-xds` carries in its `deps/` folder, and imported as JSON.
 *
 * Only types reachable from {@link ROOTS} and {@link PACKED_IN_ANY} are kept
 * (the full Envoy API is ~20 MB of JSON); options (validation rules, version
 * annotations) are dropped because they do not change the wire format; type
 * references are written fully qualified so pruning cannot change what they
 * resolve to; everything is sorted so the output only changes when the
 * schema does.
 *
 * Run: `deno task gen:protos` to rewrite the file, or
 * `deno run -A scripts/gen_xds_protos.ts --out PATH` to write elsewhere (the
 * staleness test does this).
 */
import { existsSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import protobuf from "protobufjs";

/** Where the descriptor lives in the repository. */
export const DESCRIPTOR_FILE = new URL("../xds/proto/envoy_descriptor.json", import.meta.url);

/** The command that regenerates the descriptor. */
export const UPDATE_COMMAND = "deno task gen:protos";

/** The types and services the control plane serves or reads directly. */
export const ROOTS: readonly string[] = [
  "envoy.service.discovery.v3.DiscoveryRequest",
  "envoy.service.discovery.v3.DiscoveryResponse",
  "envoy.service.discovery.v3.DeltaDiscoveryRequest",
  "envoy.service.discovery.v3.DeltaDiscoveryResponse",
  "envoy.service.discovery.v3.AggregatedDiscoveryService",
  "envoy.config.listener.v3.Listener",
  "envoy.config.cluster.v3.Cluster",
  "envoy.config.endpoint.v3.ClusterLoadAssignment",
  "envoy.config.route.v3.RouteConfiguration",
  "envoy.extensions.transport_sockets.tls.v3.Secret",
  "envoy.config.bootstrap.v3.Bootstrap",
];

/**
 * Types that only ever appear packed in a `google.protobuf.Any` (a filter's
 * `typed_config`, a transport socket, an LB policy): nothing in the schema
 * points at them, so reachability alone would drop them. The LB policies are
 * the ones `@grpc/grpc-js-xds` 1.14 registers (see its
 * `build/src/lb-policy-registry/` and `load-balancer-*.js`), plus
 * `least_request`, which Envoy sidecars understand.
 */
export const PACKED_IN_ANY: readonly string[] = [
  // Network filters.
  "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
  "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
  "envoy.extensions.filters.network.rbac.v3.RBAC",
  // HTTP filters, and their per-route overrides.
  "envoy.extensions.filters.http.router.v3.Router",
  "envoy.extensions.filters.http.fault.v3.HTTPFault",
  "envoy.extensions.filters.http.rbac.v3.RBAC",
  "envoy.extensions.filters.http.rbac.v3.RBACPerRoute",
  "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
  "envoy.config.route.v3.FilterConfig",
  // Listener filters.
  "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
  "envoy.extensions.filters.listener.original_dst.v3.OriginalDst",
  "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector",
  // Transport sockets and upstream protocol options.
  "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
  "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
  "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer",
  "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
  // Retry host predicates (`RetryPolicy.retry_host_predicate`).
  "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate",
  // Cluster extensions.
  "envoy.extensions.clusters.aggregate.v3.ClusterConfig",
  // Load-balancing policies (`Cluster.load_balancing_policy`).
  "envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin",
  "envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash",
  "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest",
  "envoy.extensions.load_balancing_policies.wrr_locality.v3.WrrLocality",
  "envoy.extensions.load_balancing_policies.client_side_weighted_round_robin.v3.ClientSideWeightedRoundRobin",
  "envoy.extensions.load_balancing_policies.pick_first.v3.PickFirst",
  // Untyped extension configs.
  "xds.type.v3.TypedStruct",
  "udpa.type.v1.TypedStruct",
  // Access loggers.
  "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
  "envoy.extensions.access_loggers.file.v3.FileAccessLog",
  // Envoy's admin `/config_dump`, for the debug endpoints.
  "envoy.admin.v3.ConfigDump",
  "envoy.admin.v3.BootstrapConfigDump",
  "envoy.admin.v3.ListenersConfigDump",
  "envoy.admin.v3.ClustersConfigDump",
  "envoy.admin.v3.RoutesConfigDump",
  "envoy.admin.v3.EndpointsConfigDump",
  "envoy.admin.v3.SecretsConfigDump",
];

/**
 * `google.protobuf.Struct` as in `struct.proto`. protobufjs bundles its own
 * copy with camelCase field names (`numberValue`), which would make Struct
 * the one type whose names differ from Envoy's JSON; this replaces it.
 */
const STRUCT_PROTO = {
  Struct: { fields: { fields: { keyType: "string", type: "Value", id: 1 } } },
  Value: {
    oneofs: {
      kind: {
        oneof: [
          "null_value",
          "number_value",
          "string_value",
          "bool_value",
          "struct_value",
          "list_value",
        ],
      },
    },
    fields: {
      null_value: { type: "NullValue", id: 1 },
      number_value: { type: "double", id: 2 },
      string_value: { type: "string", id: 3 },
      bool_value: { type: "bool", id: 4 },
      struct_value: { type: "Struct", id: 5 },
      list_value: { type: "ListValue", id: 6 },
    },
  },
  NullValue: { values: { NULL_VALUE: 0 } },
  ListValue: { fields: { values: { rule: "repeated", type: "Value", id: 1 } } },
};

/**
 * Where imports are looked up, in order: the `deps/` folders of
 * `@grpc/grpc-js-xds`, then protobufjs' own copy of `descriptor.proto` (the
 * other well-known types are built into protobufjs).
 */
export function protoDirs(): string[] {
  const require = createRequire(import.meta.url);
  const deps = join(require.resolve("@grpc/grpc-js-xds/package.json"), "..", "deps");
  return [
    ...["envoy-api", "xds", "googleapis", "protoc-gen-validate"].map((d) => join(deps, d)),
    join(require.resolve("protobufjs/package.json"), ".."),
  ];
}

/** The package of a fully qualified name: the segments before the first capitalised one. */
function packageOf(fullName: string): string {
  const parts = fullName.split(".");
  const first = parts.findIndex((p) => /^[A-Z]/.test(p));
  return parts.slice(0, first).join(".");
}

/** Loads every `.proto` file of the packages that define the wanted types. */
export function loadRoot(dirs: readonly string[], names: readonly string[]): protobuf.Root {
  protobuf.common("struct", STRUCT_PROTO);
  const find = (file: string): string | null => {
    for (const dir of dirs) {
      const path = join(dir, file);
      if (existsSync(path)) return path;
    }
    return null;
  };
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    const found = find(target);
    if (found === null) throw new Error(`Cannot find "${target}" in ${dirs.join(", ")}`);
    return found;
  };
  const files = new Set<string>();
  for (const name of names) {
    const pkgDir = packageOf(name).replaceAll(".", "/");
    const dir = dirs.map((d) => join(d, pkgDir)).find((d) => existsSync(d));
    if (dir === undefined) throw new Error(`No .proto files for package of "${name}"`);
    for (const entry of readdirSync(dir).sort()) {
      if (entry.endsWith(".proto")) files.add(`${pkgDir}/${entry}`);
    }
  }
  root.loadSync([...files], { keepCase: true });
  root.resolveAll();
  return root;
}

/** Every type, enum and service reachable from `names`, by full name without the leading dot. */
export function reachable(root: protobuf.Root, names: readonly string[]): Set<string> {
  const seen = new Set<string>();
  const visit = (obj: protobuf.ReflectionObject): void => {
    const name = obj.fullName.slice(1);
    if (seen.has(name)) return;
    seen.add(name);
    // A nested type needs its enclosing message to exist under the same name.
    if (obj.parent instanceof protobuf.Type) visit(obj.parent);
    if (obj instanceof protobuf.Type) {
      if (obj.extensions !== undefined && obj.extensions.length > 0) {
        throw new Error(`Type "${name}" has extension ranges, which the codec does not support`);
      }
      for (const field of obj.fieldsArray) {
        field.resolve();
        if (field.resolvedType !== null) visit(field.resolvedType);
      }
    } else if (obj instanceof protobuf.Service) {
      for (const method of obj.methodsArray) {
        method.resolve();
        if (method.resolvedRequestType) visit(method.resolvedRequestType);
        if (method.resolvedResponseType) visit(method.resolvedResponseType);
      }
    }
  };
  for (const name of names) visit(root.lookup(name) ?? missing(name));
  return seen;
}

function missing(name: string): never {
  throw new Error(`Type "${name}" is not defined in the loaded .proto files`);
}

type Json = { [key: string]: unknown };

/** Sorts an object's keys, so the JSON does not depend on load order. */
function sorted<T>(entries: [string, T][]): Record<string, T> {
  return Object.fromEntries(entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function fieldJson(field: protobuf.Field): Json {
  const out: Json = {};
  if (field.repeated) out.rule = "repeated";
  if (field instanceof protobuf.MapField) out.keyType = field.keyType;
  out.type = field.resolvedType === null ? field.type : field.resolvedType.fullName;
  out.id = field.id;
  // Only encoding-relevant option; Envoy's API sets none, but keep it if it ever does.
  if (field.options?.packed === false) out.options = { packed: false };
  return out;
}

function typeJson(type: protobuf.Type, keep: Set<string>): Json {
  if (type.fieldsArray.some((f) => f.getOption("proto3_optional") === true)) {
    throw new Error(
      `Type "${type.fullName}" uses proto3 optional, which the codec does not support`,
    );
  }
  const out: Json = {};
  const oneofs = type.oneofsArray.map((o): [string, Json] => [o.name, { oneof: [...o.oneof] }]);
  if (oneofs.length > 0) out.oneofs = sorted(oneofs);
  out.fields = Object.fromEntries(
    [...type.fieldsArray].sort((a, b) => a.id - b.id).map((f) => [f.name, fieldJson(f)]),
  );
  const nested = nestedJson(type, keep);
  if (nested !== undefined) out.nested = nested;
  return out;
}

function objectJson(obj: protobuf.ReflectionObject, keep: Set<string>): Json | undefined {
  if (obj instanceof protobuf.Type) {
    if (!keep.has(obj.fullName.slice(1))) return undefined;
    // The JSON carries no syntax, and protobufjs reads it back as proto3 (implicit presence,
    // packed repeated scalars); a proto2 or editions type would change meaning on the way.
    const features = (obj as unknown as { _features: Record<string, string> })._features;
    if (features.field_presence !== "IMPLICIT" || features.repeated_field_encoding !== "PACKED") {
      throw new Error(`Type "${obj.fullName}" is not proto3; the codec supports proto3 only`);
    }
    return typeJson(obj, keep);
  }
  if (obj instanceof protobuf.Enum) {
    if (!keep.has(obj.fullName.slice(1))) return undefined;
    // Declaration (number) order, never by name: protobufjs takes the first value as the
    // field's default and leaves a field holding its default off the wire.
    const values = Object.entries(obj.values).sort(([a, x], [b, y]) => x - y || (a < b ? -1 : 1));
    return { values: Object.fromEntries(values) };
  }
  if (obj instanceof protobuf.Service) {
    if (!keep.has(obj.fullName.slice(1))) return undefined;
    const methods = obj.methodsArray.map((m): [string, Json] => {
      const method: Json = {
        requestType: m.resolvedRequestType?.fullName ?? m.requestType,
        responseType: m.resolvedResponseType?.fullName ?? m.responseType,
      };
      if (m.requestStream) method.requestStream = true;
      if (m.responseStream) method.responseStream = true;
      return [m.name, method];
    });
    return { methods: sorted(methods) };
  }
  if (obj instanceof protobuf.Namespace) {
    const nested = nestedJson(obj, keep);
    return nested === undefined ? undefined : { nested };
  }
  return undefined;
}

function nestedJson(ns: protobuf.Namespace, keep: Set<string>): Json | undefined {
  const entries: [string, Json][] = [];
  for (const child of ns.nestedArray) {
    if (child instanceof protobuf.Field) continue;
    const json = objectJson(child, keep);
    if (json !== undefined) entries.push([child.name, json]);
  }
  return entries.length === 0 ? undefined : sorted(entries);
}

/** Builds the pruned descriptor; the result is what `protobuf.Root.fromJSON` takes. */
export function buildDescriptor(dirs: readonly string[] = protoDirs()): Json {
  const names = [...ROOTS, ...PACKED_IN_ANY];
  const root = loadRoot(dirs, names);
  const keep = reachable(root, names);
  return { nested: nestedJson(root, keep) ?? {} };
}

/** The descriptor as file text, laid out exactly as `deno fmt` would lay it out. */
export function renderDescriptor(descriptor: Json): string {
  return JSON.stringify(descriptor, null, 2) + "\n";
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { out: { type: "string" } } });
  const out = values.out ?? fileURLToPath(DESCRIPTOR_FILE);
  const text = renderDescriptor(buildDescriptor());
  Deno.writeTextFileSync(out, text);
  console.log(`Wrote ${out} (${text.length} bytes)`);
}
