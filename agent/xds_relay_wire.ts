/**
 * The four xDS discovery messages as the agent's relay reads and writes them:
 * state-of-the-world `DiscoveryRequest`/`DiscoveryResponse` and incremental
 * `DeltaDiscoveryRequest`/`DeltaDiscoveryResponse`, at the wire level with
 * protobufjs's Reader and Writer. Resources stay encoded bytes: the relay
 * needs only each resource's name (and, in delta, its version) to cache and
 * select them, never their content.
 *
 * Why by hand rather than through the strict codec (`xds/proto/codec.ts`):
 * the agent layer may not import `xds/`, the relay needs a handful of field
 * numbers, and keeping resources and the node as raw bytes keeps every field
 * of them intact, fields this build does not know included. The tests check
 * these bytes against Envoy's own descriptor with the strict codec.
 *
 * Field numbers (envoy.service.discovery.v3):
 * - DiscoveryRequest: version_info 1, node 2, resource_names 3, type_url 4,
 *   response_nonce 5, error_detail 6 (google.rpc.Status: code 1, message 2).
 * - DiscoveryResponse: version_info 1, resources 2 (Any), type_url 4, nonce 5.
 * - DeltaDiscoveryRequest: node 1, type_url 2, resource_names_subscribe 3,
 *   resource_names_unsubscribe 4, initial_resource_versions 5 (map entry: key
 *   1, value 2), response_nonce 6, error_detail 7.
 * - DeltaDiscoveryResponse: system_version_info 1, resources 2 (Resource),
 *   type_url 4, nonce 5, removed_resources 6.
 * - Resource: version 1, resource 2 (Any), name 3. Any: type_url 1, value 2.
 * - Every resource type the mesh serves (Listener, Cluster,
 *   RouteConfiguration, ClusterLoadAssignment, Secret, …) has its name in
 *   field 1 (`cluster_name` for ClusterLoadAssignment).
 */
import protobuf from "protobufjs";
import { CDS_TYPE_URL, LDS_TYPE_URL, RESOURCE_WRAPPER_TYPE_URL } from "../core/xds_type_urls.ts";

/** The wire types used here. */
const VARINT = 0;
const LEN = 2;
const tag = (field: number, wireType: number) => (field << 3 | wireType) >>> 0;

/**
 * The types whose empty subscription means "all of them" (a wildcard):
 * listeners and clusters, as in the xDS protocol.
 */
export const WILDCARD_TYPE_URLS: ReadonlySet<string> = new Set([LDS_TYPE_URL, CDS_TYPE_URL]);

/** A NACK's reason: `google.rpc.Status`. */
export interface ErrorDetail {
  code: number;
  message: string;
}

/** A state-of-the-world DiscoveryRequest. */
export interface SotwRequest {
  versionInfo: string;
  /** The encoded `envoy.config.core.v3.Node` message, or `null` when absent. */
  node: Uint8Array | null;
  resourceNames: string[];
  typeUrl: string;
  responseNonce: string;
  /** Present on a NACK (even an empty one). */
  errorDetail: ErrorDetail | null;
}

/** A state-of-the-world DiscoveryResponse. */
export interface SotwResponse {
  versionInfo: string;
  /** Each resource as an encoded `google.protobuf.Any`. */
  resources: Uint8Array[];
  typeUrl: string;
  nonce: string;
}

/** An incremental DeltaDiscoveryRequest. */
export interface DeltaRequest {
  node: Uint8Array | null;
  typeUrl: string;
  subscribe: string[];
  unsubscribe: string[];
  /** Name → version of what the client already has (sent on a new stream). */
  initialVersions: Map<string, string>;
  responseNonce: string;
  errorDetail: ErrorDetail | null;
}

/** One resource of a DeltaDiscoveryResponse, with the encoded `Resource` message. */
export interface DeltaResource {
  name: string;
  version: string;
  /** The whole encoded `envoy.service.discovery.v3.Resource`. */
  bytes: Uint8Array;
}

/** An incremental DeltaDiscoveryResponse. */
export interface DeltaResponse {
  systemVersionInfo: string;
  resources: DeltaResource[];
  typeUrl: string;
  nonce: string;
  removed: string[];
}

function reader(bytes: Uint8Array): protobuf.Reader {
  return protobuf.Reader.create(bytes);
}

/** Reads the next tag; a field number 0 is never valid protobuf. */
function nextTag(r: protobuf.Reader): number {
  const start = r.pos;
  const t = r.uint32();
  if (t >>> 3 === 0) throw new Error(`Invalid field number 0 at offset ${start}`);
  return t;
}

/** How to read each field a message reader takes, by tag; every other field is skipped. */
type FieldReaders = Record<number, (r: protobuf.Reader) => unknown>;

/** Reads a message field by field, as `fields` says. */
function readFields(bytes: Uint8Array, fields: FieldReaders): void {
  const r = reader(bytes);
  while (r.pos < r.len) {
    const t = nextTag(r);
    const read = fields[t];
    if (read) read(r);
    else r.skipType(t & 7);
  }
}

function readStatus(bytes: Uint8Array): ErrorDetail {
  const status = { code: 0, message: "" };
  readFields(bytes, {
    [tag(1, VARINT)]: (r) => status.code = r.int32(),
    [tag(2, LEN)]: (r) => status.message = r.string(),
  });
  return status;
}

function writeStatus(status: ErrorDetail): Uint8Array {
  const w = protobuf.Writer.create();
  if (status.code !== 0) w.uint32(tag(1, VARINT)).int32(status.code);
  if (status.message !== "") w.uint32(tag(2, LEN)).string(status.message);
  return w.finish();
}

/**
 * Reads a DiscoveryRequest.
 * @throws {Error} If the bytes are not protobuf.
 */
export function decodeSotwRequest(bytes: Uint8Array): SotwRequest {
  const out: SotwRequest = {
    versionInfo: "",
    node: null,
    resourceNames: [],
    typeUrl: "",
    responseNonce: "",
    errorDetail: null,
  };
  readFields(bytes, {
    [tag(1, LEN)]: (r) => out.versionInfo = r.string(),
    [tag(2, LEN)]: (r) => out.node = r.bytes(),
    [tag(3, LEN)]: (r) => out.resourceNames.push(r.string()),
    [tag(4, LEN)]: (r) => out.typeUrl = r.string(),
    [tag(5, LEN)]: (r) => out.responseNonce = r.string(),
    [tag(6, LEN)]: (r) => out.errorDetail = readStatus(r.bytes()),
  });
  return out;
}

/** Writes a DiscoveryRequest. */
export function encodeSotwRequest(request: SotwRequest): Uint8Array {
  const w = protobuf.Writer.create();
  if (request.versionInfo !== "") w.uint32(tag(1, LEN)).string(request.versionInfo);
  if (request.node !== null) w.uint32(tag(2, LEN)).bytes(request.node);
  for (const name of request.resourceNames) w.uint32(tag(3, LEN)).string(name);
  if (request.typeUrl !== "") w.uint32(tag(4, LEN)).string(request.typeUrl);
  if (request.responseNonce !== "") w.uint32(tag(5, LEN)).string(request.responseNonce);
  if (request.errorDetail !== null) {
    w.uint32(tag(6, LEN)).bytes(writeStatus(request.errorDetail));
  }
  return w.finish();
}

/**
 * Reads a DiscoveryResponse.
 * @throws {Error} If the bytes are not protobuf.
 */
export function decodeSotwResponse(bytes: Uint8Array): SotwResponse {
  const out: SotwResponse = { versionInfo: "", resources: [], typeUrl: "", nonce: "" };
  readFields(bytes, {
    [tag(1, LEN)]: (r) => out.versionInfo = r.string(),
    [tag(2, LEN)]: (r) => out.resources.push(r.bytes()),
    [tag(4, LEN)]: (r) => out.typeUrl = r.string(),
    [tag(5, LEN)]: (r) => out.nonce = r.string(),
  });
  return out;
}

/** Writes a DiscoveryResponse. */
export function encodeSotwResponse(response: SotwResponse): Uint8Array {
  const w = protobuf.Writer.create();
  if (response.versionInfo !== "") w.uint32(tag(1, LEN)).string(response.versionInfo);
  for (const any of response.resources) w.uint32(tag(2, LEN)).bytes(any);
  if (response.typeUrl !== "") w.uint32(tag(4, LEN)).string(response.typeUrl);
  if (response.nonce !== "") w.uint32(tag(5, LEN)).string(response.nonce);
  return w.finish();
}

function readMapEntry(bytes: Uint8Array): [string, string] {
  let key = "";
  let value = "";
  readFields(bytes, {
    [tag(1, LEN)]: (r) => key = r.string(),
    [tag(2, LEN)]: (r) => value = r.string(),
  });
  return [key, value];
}

/**
 * Reads a DeltaDiscoveryRequest.
 * @throws {Error} If the bytes are not protobuf.
 */
export function decodeDeltaRequest(bytes: Uint8Array): DeltaRequest {
  const out: DeltaRequest = {
    node: null,
    typeUrl: "",
    subscribe: [],
    unsubscribe: [],
    initialVersions: new Map(),
    responseNonce: "",
    errorDetail: null,
  };
  readFields(bytes, {
    [tag(1, LEN)]: (r) => out.node = r.bytes(),
    [tag(2, LEN)]: (r) => out.typeUrl = r.string(),
    [tag(3, LEN)]: (r) => out.subscribe.push(r.string()),
    [tag(4, LEN)]: (r) => out.unsubscribe.push(r.string()),
    [tag(5, LEN)]: (r) => out.initialVersions.set(...readMapEntry(r.bytes())),
    [tag(6, LEN)]: (r) => out.responseNonce = r.string(),
    [tag(7, LEN)]: (r) => out.errorDetail = readStatus(r.bytes()),
  });
  return out;
}

/** Writes a DeltaDiscoveryRequest. */
export function encodeDeltaRequest(request: DeltaRequest): Uint8Array {
  const w = protobuf.Writer.create();
  if (request.node !== null) w.uint32(tag(1, LEN)).bytes(request.node);
  if (request.typeUrl !== "") w.uint32(tag(2, LEN)).string(request.typeUrl);
  for (const name of request.subscribe) w.uint32(tag(3, LEN)).string(name);
  for (const name of request.unsubscribe) w.uint32(tag(4, LEN)).string(name);
  for (const [key, value] of request.initialVersions) {
    const entry = protobuf.Writer.create().uint32(tag(1, LEN)).string(key);
    if (value !== "") entry.uint32(tag(2, LEN)).string(value);
    w.uint32(tag(5, LEN)).bytes(entry.finish());
  }
  if (request.responseNonce !== "") w.uint32(tag(6, LEN)).string(request.responseNonce);
  if (request.errorDetail !== null) {
    w.uint32(tag(7, LEN)).bytes(writeStatus(request.errorDetail));
  }
  return w.finish();
}

function readDeltaResource(bytes: Uint8Array): DeltaResource {
  const out: DeltaResource = { name: "", version: "", bytes };
  readFields(bytes, {
    [tag(1, LEN)]: (r) => out.version = r.string(),
    [tag(3, LEN)]: (r) => out.name = r.string(),
  });
  return out;
}

/**
 * Reads a DeltaDiscoveryResponse.
 * @throws {Error} If the bytes are not protobuf.
 */
export function decodeDeltaResponse(bytes: Uint8Array): DeltaResponse {
  const out: DeltaResponse = {
    systemVersionInfo: "",
    resources: [],
    typeUrl: "",
    nonce: "",
    removed: [],
  };
  readFields(bytes, {
    [tag(1, LEN)]: (r) => out.systemVersionInfo = r.string(),
    [tag(2, LEN)]: (r) => out.resources.push(readDeltaResource(r.bytes())),
    [tag(4, LEN)]: (r) => out.typeUrl = r.string(),
    [tag(5, LEN)]: (r) => out.nonce = r.string(),
    [tag(6, LEN)]: (r) => out.removed.push(r.string()),
  });
  return out;
}

/** Writes a DeltaDiscoveryResponse; each resource goes as its encoded `Resource`. */
export function encodeDeltaResponse(response: DeltaResponse): Uint8Array {
  const w = protobuf.Writer.create();
  if (response.systemVersionInfo !== "") {
    w.uint32(tag(1, LEN)).string(response.systemVersionInfo);
  }
  for (const resource of response.resources) w.uint32(tag(2, LEN)).bytes(resource.bytes);
  if (response.typeUrl !== "") w.uint32(tag(4, LEN)).string(response.typeUrl);
  if (response.nonce !== "") w.uint32(tag(5, LEN)).string(response.nonce);
  for (const name of response.removed) w.uint32(tag(6, LEN)).string(name);
  return w.finish();
}

/** An encoded `google.protobuf.Any` holding `value` of `typeUrl`. */
export function encodeAny(typeUrl: string, value: Uint8Array): Uint8Array {
  return protobuf.Writer.create()
    .uint32(tag(1, LEN)).string(typeUrl)
    .uint32(tag(2, LEN)).bytes(value)
    .finish();
}

/** An encoded delta `Resource` with `name`, `version` and the resource as an Any. */
export function encodeDeltaResource(name: string, version: string, any: Uint8Array): DeltaResource {
  const bytes = protobuf.Writer.create()
    .uint32(tag(1, LEN)).string(version)
    .uint32(tag(2, LEN)).bytes(any)
    .uint32(tag(3, LEN)).string(name)
    .finish();
  return { name, version, bytes };
}

function firstString(bytes: Uint8Array, field: number): string {
  const r = reader(bytes);
  while (r.pos < r.len) {
    const t = nextTag(r);
    if (t === tag(field, LEN)) return r.string();
    r.skipType(t & 7);
  }
  return "";
}

/**
 * The name of a state-of-the-world resource (an encoded Any): field 1 of the
 * resource, or the `name` of an `envoy.service.discovery.v3.Resource` wrapper.
 * @throws {Error} If the bytes are not protobuf.
 */
export function resourceName(any: Uint8Array): string {
  let typeUrl = "";
  let value: Uint8Array = new Uint8Array();
  readFields(any, {
    [tag(1, LEN)]: (r) => typeUrl = r.string(),
    [tag(2, LEN)]: (r) => value = r.bytes(),
  });
  return typeUrl === RESOURCE_WRAPPER_TYPE_URL ? firstString(value, 3) : firstString(value, 1);
}
