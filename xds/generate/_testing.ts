/**
 * Helpers for the generators' tests (not used by the product): golden files
 * and strict protobuf checks of generated resources.
 *
 * Golden files: `testdata/<name>.input.yaml` holds `{view, request, options?}`;
 * `testdata/<name>.golden.yaml` holds the snapshot generated from it. Run the
 * tests with `UPDATE_GOLDEN=1` to rewrite the golden files, then review the
 * diff. An input's `view.policies` is a list of `{kind, metadata: {name,
 * namespace?}, spec}`, as an operator writes them; each spec must pass its
 * kind's schema.
 */
import { Buffer } from "node:buffer";
import { readFile, stat, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { parse, stringify } from "yaml";
import { GRPC_CERTIFICATE_PROVIDER } from "../../core/grpc_bootstrap.ts";
import {
  type AnyPolicy,
  API_VERSION,
  type PolicyKind,
  policySet,
  SPEC_SCHEMAS,
} from "../../core/policy/model.ts";
import { describeViolations, violations } from "../proto/validate.ts";
import type { GenerateOptions } from "./generate.ts";
import type { JsonObject, MeshView, ProxyRequest, ProxySnapshot } from "./model.ts";

/** One golden scenario's input. */
export interface Scenario {
  view: MeshView;
  request: ProxyRequest;
  options?: GenerateOptions;
}

const TESTDATA = new URL("./testdata/", import.meta.url);

/** A policy as a scenario writes it. */
export interface PolicyText {
  kind: PolicyKind;
  metadata: { name: string; namespace?: string };
  spec: unknown;
}

/** Stored policies from their text: specs checked against their schemas, metadata filled in. */
export function storedPolicies(texts: readonly PolicyText[]): AnyPolicy[] {
  return texts.map((t) =>
    ({
      apiVersion: API_VERSION,
      kind: t.kind,
      metadata: {
        name: t.metadata.name,
        namespace: t.kind === "MeshConfig" ? "" : t.metadata.namespace ?? "default",
        labels: {},
        revision: 1,
        createdAt: "2024-05-01T12:00:00Z",
        updatedAt: "2024-05-01T12:00:00Z",
        updatedBy: "golden",
      },
      spec: SPEC_SCHEMAS[t.kind].parse(t.spec),
    }) as AnyPolicy
  );
}

/** Reads `testdata/<name>.input.yaml`. */
export async function readScenario(name: string): Promise<Scenario> {
  const text = await readFile(new URL(`${name}.input.yaml`, TESTDATA), "utf8");
  const data = parse(text) as {
    view: Omit<MeshView, "policies"> & { policies?: PolicyText[] };
    request: ProxyRequest;
    options?: GenerateOptions;
  };
  if (!data || typeof data !== "object" || !data.view || !data.request) {
    throw new Error(`Invalid scenario "${name}": it needs "view" and "request"`);
  }
  const { policies, ...view } = data.view;
  return {
    ...data,
    view: policies ? { ...view, policies: policySet(storedPolicies(policies)) } : view,
  };
}

/**
 * The golden text of a snapshot: YAML, resources in snapshot order, long
 * lines never folded, and no anchors: a body shared between places is
 * written out at each.
 */
export function snapshotYaml(snapshot: ProxySnapshot): string {
  return stringify(snapshot, { lineWidth: 0, aliasDuplicateObjects: false });
}

/** True when golden files should be rewritten rather than compared. */
export function updatingGolden(): boolean {
  return Deno.env.get("UPDATE_GOLDEN") === "1";
}

/**
 * Compares `actual` with `testdata/<name>.golden.yaml`, or writes it there
 * when {@link updatingGolden}. Returns the expected text (for a readable diff).
 */
export async function goldenText(name: string, actual: string): Promise<string> {
  const url = new URL(`${name}.golden.yaml`, TESTDATA);
  if (updatingGolden()) {
    await writeFile(url, actual);
    return actual;
  }
  try {
    return await readFile(url, "utf8");
  } catch (e) {
    throw new Error(
      `Cannot read golden file "${fileURLToPath(url)}": run with UPDATE_GOLDEN=1 to create it`,
      { cause: e },
    );
  }
}

/** The strict codec's surface as its tests here use it (`xds/proto/codec.ts`). */
export interface StrictCodec {
  encodeStrict(typeName: string, obj: unknown): Uint8Array;
  decodeStrict(typeName: string, bytes: Uint8Array): unknown;
}

const CODEC_URL = new URL("../proto/codec.ts", import.meta.url);

/**
 * The strict codec, or `undefined` while `xds/proto/codec.ts` does not exist.
 * A codec file that exists but fails to load, or lacks the expected
 * functions, is an error, not a reason to skip.
 */
export async function loadCodec(): Promise<StrictCodec | undefined> {
  try {
    await stat(CODEC_URL);
  } catch {
    return undefined;
  }
  // A computed specifier keeps the type checker from requiring the file to exist.
  const mod = await import(CODEC_URL.href) as Partial<StrictCodec>;
  if (typeof mod.encodeStrict !== "function" || typeof mod.decodeStrict !== "function") {
    throw new Error(`Module "${CODEC_URL.href}" lacks encodeStrict() or decodeStrict()`);
  }
  return mod as StrictCodec;
}

/**
 * Checks `obj` against Envoy's protobuf definition of `typeName` (e.g.
 * `envoy.config.listener.v3.Listener`) with the strict codec: encoding must
 * accept every key and value, and decoding the bytes must give back `obj`
 * itself, so nothing we meant is lost on the wire; and the decoded message
 * must keep Envoy's protoc-gen-validate rules (`xds/proto/validate.ts`),
 * which Envoy enforces beyond the schema. Returns the bytes, or
 * `undefined` (having checked nothing) while the codec does not exist.
 */
export async function assertEnvoyValid(
  typeName: string,
  obj: JsonObject,
): Promise<Uint8Array | undefined> {
  const codec = await loadCodec();
  if (!codec) return undefined;
  let bytes: Uint8Array;
  try {
    bytes = codec.encodeStrict(typeName, obj);
  } catch (e) {
    throw new Error(`Invalid ${typeName}: ${(e as Error).message}`, { cause: e });
  }
  const decoded = codec.decodeStrict(typeName, bytes) as JsonObject;
  const difference = firstDifference(obj, decoded, "");
  if (difference !== undefined) {
    throw new Error(`${typeName} changes on the wire at "${difference}"`);
  }
  // What Envoy checks beyond the schema: the protoc-gen-validate rules of its .proto files.
  const broken = describeViolations(violations(typeName, decoded));
  if (broken.length > 0) {
    throw new Error(`${typeName} breaks Envoy's validation rules:\n  ${broken.join("\n  ")}`);
  }
  return bytes;
}

/** The JSON pointer of the first place where `a` and `b` differ, or `undefined` when equal. */
function firstDifference(a: unknown, b: unknown, pointer: string): string | undefined {
  if (typeof a !== "object" || a === null || typeof b !== "object" || b === null) {
    return Object.is(a, b) ? undefined : pointer || "/";
  }
  if (Array.isArray(a) !== Array.isArray(b)) return pointer || "/";
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const key of [...keys].sort()) {
    const d = firstDifference(
      (a as Record<string, unknown>)[key],
      (b as Record<string, unknown>)[key],
      `${pointer}/${key}`,
    );
    if (d !== undefined) return d;
  }
  return undefined;
}

/**
 * What grpc-js-xds itself says of one encoded resource: its own protobuf
 * decoding (independent of our codec) and its validation, the same code a
 * proxyless client runs on an ADS response. Returns the error, or
 * `undefined` when the client would accept the resource.
 */
export async function grpcJsXdsError(
  typeUrl: string,
  bytes: Uint8Array,
): Promise<string | undefined> {
  // grpc-js-xds 1.14 knows the RBAC filter only with this flag, read when it loads; proxyless
  // servers run with it (`proxyless_security.ts`), and clients never see an RBAC filter.
  Deno.env.set("GRPC_XDS_EXPERIMENTAL_RBAC", "true");
  const xds = await import("@grpc/grpc-js-xds");
  // The router filter is known to the validator only once the plugin is registered.
  xds.register();
  const kinds = {
    "envoy.config.listener.v3.Listener": async () =>
      (await import("@grpc/grpc-js-xds/build/src/xds-resource-type/listener-resource-type.js"))
        .ListenerResourceType,
    "envoy.config.route.v3.RouteConfiguration": async () =>
      (await import("@grpc/grpc-js-xds/build/src/xds-resource-type/route-config-resource-type.js"))
        .RouteConfigurationResourceType,
    "envoy.config.cluster.v3.Cluster": async () =>
      (await import("@grpc/grpc-js-xds/build/src/xds-resource-type/cluster-resource-type.js"))
        .ClusterResourceType,
    "envoy.config.endpoint.v3.ClusterLoadAssignment": async () =>
      (await import("@grpc/grpc-js-xds/build/src/xds-resource-type/endpoint-resource-type.js"))
        .EndpointResourceType,
  } as const;
  const typeName = typeUrl.slice(typeUrl.lastIndexOf("/") + 1) as keyof typeof kinds;
  const load = kinds[typeName];
  if (!load) return `grpc-js-xds does not use ${typeName}`;
  const resourceType = await load();
  // Only certificate providers are consulted, and only for resources with TLS: the agent's
  // bootstrap has one (`core/grpc_bootstrap.ts`).
  const certificateProviders = { [GRPC_CERTIFICATE_PROVIDER]: {} };
  const context = { server: {}, bootstrap: { certificateProviders } } as unknown as Parameters<
    ReturnType<typeof resourceType.get>["decode"]
  >[0];
  const value = Buffer.from(bytes);
  const result = resourceType.get().decode(context, { type_url: typeUrl, value });
  return result.error;
}

/** A seeded pseudo-random generator (mulberry32) for shuffles that a failing test can repeat. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A shuffled copy of `items` (Fisher–Yates). */
export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** The body of the resource of `kind` named `name`; fails when the snapshot lacks it. */
export function bodyOf(
  snapshot: ProxySnapshot,
  kind: keyof ProxySnapshot,
  name: string,
): JsonObject {
  const found = snapshot[kind].find((r) => r.name === name);
  if (!found) throw new Error(`No ${kind} resource named "${name}" in the snapshot`);
  return found.body;
}

/** The routes of a route configuration's only virtual host. */
export function routesOf(routeConfiguration: JsonObject): JsonObject[] {
  const [host] = routeConfiguration["virtual_hosts"] as JsonObject[];
  return host!["routes"] as JsonObject[];
}

/** The route named `name` (a TrafficRoute rule's name) of a route configuration. */
export function routeNamed(routeConfiguration: JsonObject, name: string): JsonObject {
  const found = routesOf(routeConfiguration).find((r) => r["name"] === name);
  if (!found) throw new Error(`No route named "${name}"`);
  return found;
}

/** The HttpConnectionManager of a listener's filter chain (`chain`, default the first). */
export function connectionManager(listener: JsonObject, chain = 0): JsonObject {
  const chains = listener["filter_chains"] as JsonObject[];
  const filters = chains[chain]!["filters"] as JsonObject[];
  return filters.at(-1)!["typed_config"] as JsonObject;
}
