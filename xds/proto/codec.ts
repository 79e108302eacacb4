/**
 * A strict protobuf codec for Envoy's xDS types, driven by the descriptor
 * that `scripts/gen_xds_protos.ts` compiles from Envoy's `.proto` files. The
 * descriptor is imported as JSON, so the bundled program carries it and reads
 * nothing from disk.
 *
 * ## Decision: replace the strict checker by `@bufbuild/protobuf` (measured 2026-12-07)
 *
 * protobufjs drops unknown keys silently, so this module checks every key
 * before it encodes. `@bufbuild/protobuf` refuses unknown fields itself
 * (`fromJson`). `scripts/bench/codec.ts` (`deno task bench --only codec`)
 * encodes the 94 resources of the generator golden files 200 times with
 * each, on this descriptor, after checking that both encodings decode to
 * the same message and that both refuse a misspelt field: this module
 * 1,464 ms (77.9 µs a resource), `@bufbuild/protobuf` 2.17.0 709 ms
 * (37.7 µs), 2.1× faster. So the xDS rewrite replaces this checker and
 * protobufjs with the library, shipping the descriptor as a
 * `FileDescriptorSet` from `scripts/gen_xds_protos.ts` (converting this JSON
 * at start-up, as the bench does, costs 177 ms); it must keep errors that
 * point at the bad field, pre-encoded `Any`s ({@link packAny}) and the
 * canonical decoded form below. Until then this module stays as it is
 * (docs/architecture.md has the same decision).
 *
 * Messages are plain objects with the proto field names (snake_case), the
 * way Envoy's YAML and JSON documentation writes them. protobufjs on its own
 * silently drops keys it does not know, so a misspelt field would vanish from
 * the config a proxy receives; {@link encodeStrict} checks every key, value,
 * enum name and oneof against the schema first and names the culprit.
 *
 * The JSON forms follow the proto3 JSON mapping where Envoy's docs use it:
 * `google.protobuf.Any` as `{"@type": url, ...fields}`, Durations as `"5s"`,
 * wrappers as bare scalars, Struct as plain JSON, bytes as base64.
 *
 * ## Canonical form
 *
 * {@link decodeStrict} returns the canonical form, and
 * `decodeStrict(t, encodeStrict(t, x))` deep-equals `x` whenever `x` is
 * already canonical:
 *
 * - Scalar and enum fields outside a oneof that hold their default (`0`,
 *   `""`, `false`, empty bytes, the enum's zero value) are omitted, as are
 *   empty repeated and map fields. Message fields are kept even when empty
 *   (`ads: {}` means something), and so are oneof members.
 * - Enums are value names. 64-bit integers are numbers when they are safe
 *   integers, else decimal strings. `float` fields hold the shortest decimal
 *   that rounds to the same 32-bit float. Bytes are padded standard base64.
 * - `Any` is `{"@type": url, ...fields}`; for a well-known type with a JSON
 *   form of its own it is `{"@type": url, value: json}`; for a type outside
 *   the descriptor it is the raw `{type_url, value: base64}` (`value`
 *   omitted when empty). An `Any` to encode needs `"@type"` or `type_url`.
 * - Duration is `"<seconds>s"` with 0, 3, 6 or 9 fractional digits
 *   (`"5s"`, `"0.250s"`, `"-1.500s"`); Timestamp is RFC 3339 in UTC with
 *   0, 3, 6 or 9 fractional digits (`"2024-05-01T12:00:00Z"`).
 * - Wrappers (`UInt32Value`, …) are their bare value; Struct, Value and
 *   ListValue are plain JSON (a Value with no kind set decodes as `null`).
 *
 * Fields unknown to the descriptor are skipped when decoding, as protobuf
 * requires for forward compatibility.
 *
 * @module
 */
import protobuf from "protobufjs";
import descriptor from "./envoy_descriptor.json" with { type: "json" };

/** A message as a plain object keyed by proto field names. */
export type ProtoJson = Record<string, unknown>;

/** An `Any` whose payload is already encoded, as {@link packAny} makes it. */
export interface PackedAny {
  type_url: string;
  value: Uint8Array;
}

/** An object that does not fit the schema; thrown by {@link encodeStrict} and {@link decodeStrict}. */
export class ProtoSchemaError extends Error {
  override readonly name = "ProtoSchemaError";
  /**
   * @param message What is wrong and where.
   * @param pointer JSON pointer (RFC 6901) of the message holding the problem; `""` is the top.
   * @param typeName Full name of that message's type.
   */
  constructor(message: string, readonly pointer: string, readonly typeName: string) {
    super(message);
  }
}

/** The prefix Envoy and gRPC use for every type URL. */
export const TYPE_URL_PREFIX = "type.googleapis.com/";

/** `type.googleapis.com/<name>`: the type URL of a message type. */
export function typeUrl(typeName: string): string {
  return TYPE_URL_PREFIX + typeName;
}

/** Listener Discovery Service resources (`envoy.config.listener.v3.Listener`). */
export const LDS_TYPE_URL = typeUrl("envoy.config.listener.v3.Listener");
/** Route Discovery Service resources (`envoy.config.route.v3.RouteConfiguration`). */
export const RDS_TYPE_URL = typeUrl("envoy.config.route.v3.RouteConfiguration");
/** Cluster Discovery Service resources (`envoy.config.cluster.v3.Cluster`). */
export const CDS_TYPE_URL = typeUrl("envoy.config.cluster.v3.Cluster");
/** Endpoint Discovery Service resources (`envoy.config.endpoint.v3.ClusterLoadAssignment`). */
export const EDS_TYPE_URL = typeUrl("envoy.config.endpoint.v3.ClusterLoadAssignment");
/** Secret Discovery Service resources (`envoy.extensions.transport_sockets.tls.v3.Secret`). */
export const SDS_TYPE_URL = typeUrl("envoy.extensions.transport_sockets.tls.v3.Secret");

const root = protobuf.Root.fromJSON(descriptor as protobuf.INamespace);
const types = new Map<string, protobuf.Type>();

function findType(typeName: string): protobuf.Type | undefined {
  const name = typeName.startsWith(".") ? typeName.slice(1) : typeName;
  let type = types.get(name);
  if (type === undefined) {
    const found = root.lookup(name);
    if (!(found instanceof protobuf.Type)) return undefined;
    type = found;
    types.set(name, type);
  }
  return type;
}

/**
 * The protobufjs type of a message in the descriptor, e.g. for a gRPC
 * service's (de)serializers. Its `encode`/`decode` skip the strict checks.
 * @throws {Error} If the descriptor has no such message type.
 */
export function lookupType(typeName: string): protobuf.Type {
  const type = findType(typeName);
  if (type === undefined) throw new Error(`Unknown message type "${typeName}"`);
  return type;
}

/**
 * Checks `value` against the schema of `typeName` and encodes it.
 * @param typeName Full name of the message type, without a leading dot.
 * @param value The message in the JSON form described in the module doc;
 *   `undefined` fields count as absent.
 * @throws {ProtoSchemaError} On the first key, value or oneof that does not fit.
 */
export function encodeStrict(typeName: string, value: unknown): Uint8Array {
  const type = lookupType(typeName);
  const message = toMessage(type, value, { pointer: "", owner: bare(type), label: null }, "");
  return type.encode(message).finish();
}

/**
 * Decodes bytes into the canonical JSON form described in the module doc.
 * @param typeName Full name of the message type, without a leading dot.
 * @throws {Error} If the bytes are not a valid encoding of the type.
 */
export function decodeStrict(typeName: string, bytes: Uint8Array): ProtoJson {
  const type = lookupType(typeName);
  const decoded = fromMessage(type, type.decode(bytes), "");
  if (!isPlainObject(decoded)) {
    throw new Error(`Type "${typeName}" decodes to a bare JSON value; use its message instead`);
  }
  return decoded;
}

/**
 * Wraps an already-encoded message as an `Any`, for resources encoded once and
 * sent to many proxies. {@link encodeStrict} accepts the result wherever an
 * `Any` goes.
 * @throws {Error} If the descriptor has no such message type.
 */
export function packAny(typeName: string, bytes: Uint8Array): PackedAny {
  lookupType(typeName);
  return { type_url: typeUrl(typeName), value: bytes };
}

// ---------------------------------------------------------------------------
// Errors

/** Where a value sits: the field `label` of the message at `pointer`, whose type is `owner`. */
interface Site {
  pointer: string;
  owner: string;
  /** The field, with `[i]` or `["key"]` for an element; `null` for the top-level value. */
  label: string | null;
}

function bare(type: protobuf.ReflectionObject): string {
  return type.fullName.slice(1);
}

function where(pointer: string, owner: string): string {
  return `at ${pointer === "" ? "/" : pointer} (${owner})`;
}

function invalid(site: Site, detail: string): ProtoSchemaError {
  const subject = site.label === null ? "Invalid value" : `Invalid value for field "${site.label}"`;
  return new ProtoSchemaError(
    `${subject} ${where(site.pointer, site.owner)}: ${detail}`,
    site.pointer,
    site.owner,
  );
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return "an array";
  if (value instanceof Uint8Array) return "bytes";
  if (typeof value === "string") {
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  }
  if (typeof value === "object") return "an object";
  if (typeof value === "bigint") return `${value}n`;
  return String(value);
}

function childPointer(pointer: string, key: string | number): string {
  return `${pointer}/${String(key).replaceAll("~", "~0").replaceAll("/", "~1")}`;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function hasOwn(object: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(object, key);
}

/** Sets a key even when it is `__proto__`, which plain assignment would treat as the prototype. */
function setOwn(object: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(object, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

// ---------------------------------------------------------------------------
// Scalars

const INT32 = new Set(["int32", "sint32", "sfixed32"]);
const UINT32 = new Set(["uint32", "fixed32"]);
const INT64 = new Set(["int64", "sint64", "sfixed64"]);
const UINT64 = new Set(["uint64", "fixed64"]);

/** A 64-bit value as protobufjs' writer takes it: a number, or `{low, high}` beyond 2^53. */
type Long64 = number | { low: number; high: number };

function toLong64(value: bigint): Long64 {
  if (value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)) {
    return Number(value);
  }
  const bits = BigInt.asUintN(64, value);
  return { low: Number(bits & 0xffffffffn) | 0, high: Number(bits >> 32n) | 0 };
}

function int64Value(type: string, value: unknown, site: Site): Long64 {
  const unsigned = UINT64.has(type);
  const [min, max] = unsigned ? [0n, 2n ** 64n - 1n] : [-(2n ** 63n), 2n ** 63n - 1n];
  let big: bigint | undefined;
  if (typeof value === "number" && Number.isSafeInteger(value)) big = BigInt(value);
  if (typeof value === "string" && /^-?(0|[1-9][0-9]*)$/.test(value)) big = BigInt(value);
  if (big === undefined || big < min || big > max) {
    throw invalid(
      site,
      `expected ${type} (a safe integer or a decimal string), got ${describe(value)}`,
    );
  }
  return toLong64(big);
}

function fromLong64(value: unknown, unsigned: boolean): number | string {
  if (typeof value === "number") return value;
  const { low, high } = value as { low: number; high: number };
  const bits = (BigInt(high >>> 0) << 32n) | BigInt(low >>> 0);
  const big = unsigned ? bits : BigInt.asIntN(64, bits);
  return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(big)
    : big.toString();
}

const BASE64 = /^(?:[A-Za-z0-9+/]*|[A-Za-z0-9_-]*)={0,2}$/;

function bytesValue(value: unknown, site: Site): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (typeof value === "string" && BASE64.test(value)) {
    const unpadded = value.replace(/=+$/, "");
    const padded = value.length !== unpadded.length;
    if (unpadded.length % 4 !== 1 && (!padded || value.length % 4 === 0)) {
      const text = unpadded.replaceAll("-", "+").replaceAll("_", "/");
      const out = new Uint8Array(protobuf.util.base64.length(text));
      const n = protobuf.util.base64.decode(text, out, 0);
      return out.subarray(0, n);
    }
  }
  throw invalid(site, `expected bytes (a Uint8Array or a base64 string), got ${describe(value)}`);
}

function toBase64(bytes: Uint8Array): string {
  return protobuf.util.base64.encode(bytes, 0, bytes.length);
}

/** The shortest decimal that rounds to the same 32-bit float. */
function shortestFloat(value: number): number {
  if (!Number.isFinite(value)) return value;
  for (let digits = 1; digits < 10; digits++) {
    const candidate = Number(value.toPrecision(digits));
    if (Math.fround(candidate) === value) return candidate;
  }
  return value;
}

function scalarValue(type: string, value: unknown, site: Site): unknown {
  const fail = (): never => {
    throw invalid(site, `expected ${type}, got ${describe(value)}`);
  };
  if (INT32.has(type)) {
    if (
      !Number.isInteger(value) || (value as number) < -(2 ** 31) || (value as number) >= 2 ** 31
    ) {
      fail();
    }
    return value;
  }
  if (UINT32.has(type)) {
    if (!Number.isInteger(value) || (value as number) < 0 || (value as number) >= 2 ** 32) fail();
    return value;
  }
  if (INT64.has(type) || UINT64.has(type)) return int64Value(type, value, site);
  switch (type) {
    case "double":
    case "float":
      if (typeof value !== "number") fail();
      return value;
    case "bool":
      if (typeof value !== "boolean") fail();
      return value;
    case "string":
      if (typeof value !== "string") fail();
      return value;
    case "bytes":
      return bytesValue(value, site);
  }
  throw new Error(`Unsupported scalar type "${type}"`);
}

function fromScalar(type: string, value: unknown): unknown {
  if (INT64.has(type) || UINT64.has(type)) return fromLong64(value, UINT64.has(type));
  if (type === "float") return shortestFloat(value as number);
  if (type === "bytes") return toBase64(value as Uint8Array);
  return value;
}

function scalarDefault(type: string): unknown {
  if (type === "bool") return false;
  if (type === "string" || type === "bytes") return "";
  return 0;
}

function isDefault(value: unknown): boolean {
  return value === 0 || value === "" || value === false ||
    (value instanceof Uint8Array && value.length === 0);
}

function enumValue(type: protobuf.Enum, value: unknown, site: Site): number {
  if (typeof value === "string" && hasOwn(type.values, value)) return type.values[value]!;
  if (typeof value === "number" && type.valuesById[value] !== undefined) return value;
  throw invalid(site, `${describe(value)} is not a value of enum ${bare(type)}`);
}

// ---------------------------------------------------------------------------
// Well-known types with a JSON form of their own

const WRAPPERS = new Set(
  ["Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes"].map((t) =>
    `.google.protobuf.${t}Value`
  ),
);
const JSON_WKT = new Set([
  ...WRAPPERS,
  ".google.protobuf.Any",
  ".google.protobuf.Duration",
  ".google.protobuf.Timestamp",
  ".google.protobuf.Struct",
  ".google.protobuf.Value",
  ".google.protobuf.ListValue",
]);

/** ±10,000 years, the range the Duration type allows. */
const MAX_DURATION_SECONDS = 315_576_000_000;
const DURATION = /^(-)?([0-9]+)(?:\.([0-9]{1,9}))?s$/;

function durationValue(
  type: protobuf.Type,
  value: unknown,
  site: Site,
  pointer: string,
): ProtoJson {
  let seconds: number;
  let nanos: number;
  if (typeof value === "string") {
    const match = DURATION.exec(value);
    if (match === null) {
      throw invalid(site, `expected a duration such as "5s" or "0.250s", got ${describe(value)}`);
    }
    const sign = match[1] === undefined ? 1 : -1;
    seconds = sign * Number(match[2]);
    nanos = sign * Number((match[3] ?? "").padEnd(9, "0"));
  } else {
    const fields = toFields(type, value, site, pointer);
    seconds = Number(fields.seconds ?? 0);
    nanos = Number(fields.nanos ?? 0);
    if (typeof fields.seconds === "object" || Math.abs(nanos) > 999_999_999) seconds = Infinity;
    if ((seconds > 0 && nanos < 0) || (seconds < 0 && nanos > 0)) {
      throw invalid(site, "seconds and nanos must have the same sign");
    }
  }
  if (Math.abs(seconds) > MAX_DURATION_SECONDS) {
    throw invalid(site, `duration ${describe(value)} is out of range`);
  }
  return withoutDefaults({ seconds: seconds === 0 ? 0 : seconds, nanos: nanos === 0 ? 0 : nanos });
}

function fraction(nanos: number): string {
  if (nanos === 0) return "";
  const digits = String(nanos).padStart(9, "0");
  if (digits.endsWith("000000")) return `.${digits.slice(0, 3)}`;
  if (digits.endsWith("000")) return `.${digits.slice(0, 6)}`;
  return `.${digits}`;
}

function fromDuration(message: ProtoJson): string {
  const seconds = Number(fromLong64(message.seconds ?? 0, false));
  const nanos = Number(message.nanos ?? 0);
  const negative = seconds < 0 || nanos < 0;
  return `${negative ? "-" : ""}${Math.abs(seconds)}${fraction(Math.abs(nanos))}s`;
}

const TIMESTAMP =
  /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?(Z|[+-][0-9]{2}:[0-9]{2})$/;
/** 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range Timestamp allows. */
const [MIN_TIMESTAMP, MAX_TIMESTAMP] = [-62_135_596_800, 253_402_300_799];

function timestampValue(
  type: protobuf.Type,
  value: unknown,
  site: Site,
  pointer: string,
): ProtoJson {
  let seconds = NaN;
  let nanos = 0;
  if (typeof value === "string") {
    const m = TIMESTAMP.exec(value);
    if (m !== null) {
      const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as number[];
      const date = new Date(0);
      date.setUTCFullYear(year!, month! - 1, day!);
      date.setUTCHours(hour!, minute!, second!);
      const valid = date.getUTCMonth() === month! - 1 && date.getUTCDate() === day! &&
        hour! < 24 && minute! < 60 && second! < 60;
      const zone = m[8]!;
      const offset = zone === "Z"
        ? 0
        : (zone.startsWith("-") ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4)));
      if (valid) seconds = date.getTime() / 1000 - offset * 60;
      nanos = Number((m[7] ?? "").padEnd(9, "0"));
    }
  } else {
    const fields = toFields(type, value, site, pointer);
    seconds = typeof fields.seconds === "object" ? NaN : Number(fields.seconds ?? 0);
    nanos = Number(fields.nanos ?? 0);
    if (nanos < 0 || nanos > 999_999_999) seconds = NaN;
  }
  if (!(seconds >= MIN_TIMESTAMP && seconds <= MAX_TIMESTAMP)) {
    throw invalid(
      site,
      `expected an RFC 3339 timestamp from year 1 to 9999 such as "2024-05-01T12:00:00Z", got ${
        describe(value)
      }`,
    );
  }
  return withoutDefaults({ seconds, nanos });
}

function fromTimestamp(message: ProtoJson): string {
  const seconds = Number(fromLong64(message.seconds ?? 0, false));
  const iso = new Date(seconds * 1000).toISOString();
  return `${iso.slice(0, 19)}${fraction(Number(message.nanos ?? 0))}Z`;
}

function withoutDefaults(message: ProtoJson): ProtoJson {
  return Object.fromEntries(Object.entries(message).filter(([, v]) => !isDefault(v)));
}

/** A plain JSON value as a `google.protobuf.Value`; `at` locates it inside the Struct for errors. */
function jsonToValue(value: unknown, site: Site, at: string): ProtoJson {
  if (value === null) return { null_value: 0 };
  switch (typeof value) {
    case "number":
      if (!Number.isFinite(value)) break;
      return { number_value: value };
    case "string":
      return { string_value: value };
    case "boolean":
      return { bool_value: value };
  }
  if (Array.isArray(value)) return { list_value: jsonToList(value, site, at) };
  if (isPlainObject(value)) return { struct_value: jsonToStruct(value, site, at) };
  throw invalid(site, `expected a JSON value at "${at === "" ? "/" : at}", got ${describe(value)}`);
}

function jsonToList(value: unknown, site: Site, at: string): ProtoJson {
  if (!Array.isArray(value)) throw invalid(site, `expected an array, got ${describe(value)}`);
  return { values: value.map((v, i) => jsonToValue(v, site, childPointer(at, i))) };
}

function jsonToStruct(value: unknown, site: Site, at: string): ProtoJson {
  if (!isPlainObject(value)) {
    throw invalid(site, `expected a JSON object, got ${describe(value)}`);
  }
  const fields: ProtoJson = {};
  for (const [key, v] of Object.entries(value)) {
    setOwn(fields, key, jsonToValue(v, site, childPointer(at, key)));
  }
  return { fields };
}

function valueToJson(message: ProtoJson): unknown {
  // Decoded messages inherit defaults from their prototype; only own keys were on the wire.
  if (hasOwn(message, "struct_value")) return structToJson(message.struct_value as ProtoJson);
  if (hasOwn(message, "list_value")) return listToJson(message.list_value as ProtoJson);
  for (const kind of ["string_value", "number_value", "bool_value"]) {
    if (hasOwn(message, kind)) return message[kind];
  }
  return null;
}

function listToJson(message: ProtoJson): unknown[] {
  return ((message.values ?? []) as ProtoJson[]).map(valueToJson);
}

function structToJson(message: ProtoJson): ProtoJson {
  const out: ProtoJson = {};
  for (const [key, v] of Object.entries((message.fields ?? {}) as ProtoJson)) {
    setOwn(out, key, valueToJson(v as ProtoJson));
  }
  return out;
}

function anyValue(type: protobuf.Type, value: unknown, site: Site, pointer: string): ProtoJson {
  if (!isPlainObject(value)) throw invalid(site, `expected an object, got ${describe(value)}`);
  if (!hasOwn(value, "@type")) {
    // The raw form, e.g. from packAny().
    if (!hasOwn(value, "type_url")) {
      throw invalid(site, 'expected an Any with "@type" (or "type_url" and "value")');
    }
    return toFields(type, value, site, pointer);
  }
  const url = value["@type"];
  const name = typeof url === "string" ? url.slice(url.lastIndexOf("/") + 1) : "";
  const inner = name === "" ? undefined : findType(name);
  if (typeof url !== "string" || inner === undefined) {
    throw invalid(site, `unknown type ${describe(url)} in "@type"`);
  }
  let message: ProtoJson;
  if (JSON_WKT.has(inner.fullName)) {
    for (const key of Object.keys(value)) {
      if (key !== "@type" && key !== "value") {
        throw new ProtoSchemaError(
          `Unknown field "${key}" ${where(pointer, bare(inner))}: ` +
            `an Any holding ${bare(inner)} takes its JSON form in "value"`,
          pointer,
          bare(inner),
        );
      }
    }
    message = toMessage(inner, value.value, site, pointer);
  } else {
    const { "@type": _, ...fields } = value;
    message = toFields(inner, fields, site, pointer);
  }
  return { type_url: url, value: inner.encode(message).finish() };
}

function fromAny(message: ProtoJson, pointer: string): ProtoJson {
  const url = hasOwn(message, "type_url") ? String(message.type_url) : "";
  const bytes = hasOwn(message, "value") ? message.value as Uint8Array : new Uint8Array();
  const inner = url === "" ? undefined : findType(url.slice(url.lastIndexOf("/") + 1));
  if (inner === undefined) {
    return bytes.length === 0 ? { type_url: url } : { type_url: url, value: toBase64(bytes) };
  }
  const decoded = fromMessage(inner, inner.decode(bytes), pointer);
  return JSON_WKT.has(inner.fullName)
    ? { "@type": url, value: decoded }
    : { "@type": url, ...(decoded as ProtoJson) };
}

// ---------------------------------------------------------------------------
// Messages

/** The value of a message-typed position (field, element, top level) as protobufjs encodes it. */
function toMessage(type: protobuf.Type, value: unknown, site: Site, pointer: string): ProtoJson {
  const name = type.fullName;
  if (WRAPPERS.has(name)) {
    const inner = scalarValue(type.fields.value!.type, value, site);
    return isDefault(inner) ? {} : { value: inner };
  }
  switch (name) {
    case ".google.protobuf.Any":
      return anyValue(type, value, site, pointer);
    case ".google.protobuf.Duration":
      return durationValue(type, value, site, pointer);
    case ".google.protobuf.Timestamp":
      return timestampValue(type, value, site, pointer);
    case ".google.protobuf.Struct":
      return jsonToStruct(value, site, "");
    case ".google.protobuf.ListValue":
      return jsonToList(value, site, "");
    case ".google.protobuf.Value":
      return jsonToValue(value, site, "");
  }
  return toFields(type, value, site, pointer);
}

/** Checks every key of an ordinary message against its fields and converts the values. */
function toFields(type: protobuf.Type, value: unknown, site: Site, pointer: string): ProtoJson {
  if (!isPlainObject(value)) throw invalid(site, `expected an object, got ${describe(value)}`);
  const owner = bare(type);
  for (const key of Object.keys(value)) {
    if (!hasOwn(type.fields, key)) {
      throw new ProtoSchemaError(`Unknown field "${key}" ${where(pointer, owner)}`, pointer, owner);
    }
  }
  for (const oneof of type.oneofsArray) {
    const set = oneof.oneof.filter((member) => value[member] !== undefined);
    if (set.length > 1) throw oneofError(oneof, set, pointer, owner);
  }
  const out: ProtoJson = {};
  for (const field of type.fieldsArray) {
    const v = value[field.name];
    if (v === undefined) continue;
    const at: Site = { pointer, owner, label: field.name };
    const child = childPointer(pointer, field.name);
    if (field instanceof protobuf.MapField) {
      if (!isPlainObject(v)) throw invalid(at, `expected an object (a map), got ${describe(v)}`);
      const entries: ProtoJson = {};
      for (const [key, entry] of Object.entries(v)) {
        const label = `${field.name}[${JSON.stringify(key)}]`;
        checkMapKey(field.keyType, key, { ...at, label });
        const converted = toSingle(field, entry, { ...at, label }, childPointer(child, key));
        setOwn(entries, key, converted);
      }
      if (Object.keys(entries).length > 0) out[field.name] = entries;
    } else if (field.repeated) {
      if (!Array.isArray(v)) throw invalid(at, `expected an array, got ${describe(v)}`);
      if (v.length > 0) {
        out[field.name] = v.map((element, i) =>
          toSingle(field, element, { ...at, label: `${field.name}[${i}]` }, childPointer(child, i))
        );
      }
    } else {
      const converted = toSingle(field, v, at, child);
      const implicit = field.partOf === null && !(field.resolvedType instanceof protobuf.Type);
      if (!(implicit && isDefault(converted))) out[field.name] = converted;
    }
  }
  return out;
}

function toSingle(field: protobuf.Field, value: unknown, site: Site, pointer: string): unknown {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) return toMessage(resolved, value, site, pointer);
  if (resolved instanceof protobuf.Enum) return enumValue(resolved, value, site);
  return scalarValue(field.type, value, site);
}

function checkMapKey(keyType: string, key: string, site: Site): void {
  if (keyType === "string" || (keyType === "bool" && (key === "true" || key === "false"))) return;
  if (keyType !== "bool" && /^-?(0|[1-9][0-9]*)$/.test(key)) {
    scalarValue(keyType, INT64.has(keyType) || UINT64.has(keyType) ? key : Number(key), site);
    return;
  }
  throw invalid(site, `map key ${describe(key)} is not a ${keyType}`);
}

function oneofError(
  oneof: protobuf.OneOf,
  set: string[],
  pointer: string,
  owner: string,
): ProtoSchemaError {
  return new ProtoSchemaError(
    `Oneof "${oneof.name}" has more than one member set ${where(pointer, owner)}: ` +
      set.map((m) => `"${m}"`).join(", "),
    pointer,
    owner,
  );
}

/** The canonical JSON form of a decoded message (see the module doc). */
function fromMessage(type: protobuf.Type, message: object, pointer: string): unknown {
  const name = type.fullName;
  const m = message as ProtoJson;
  if (WRAPPERS.has(name)) {
    const field = type.fields.value!;
    return hasOwn(m, "value") ? fromScalar(field.type, m.value) : scalarDefault(field.type);
  }
  switch (name) {
    case ".google.protobuf.Any":
      return fromAny(m, pointer);
    case ".google.protobuf.Duration":
      return fromDuration(m);
    case ".google.protobuf.Timestamp":
      return fromTimestamp(m);
    case ".google.protobuf.Struct":
      return structToJson(m);
    case ".google.protobuf.ListValue":
      return listToJson(m);
    case ".google.protobuf.Value":
      return valueToJson(m);
  }
  // protobufjs keeps only the last oneof member seen on the wire, as protobuf requires.
  const out: ProtoJson = {};
  for (const field of type.fieldsArray) {
    if (!hasOwn(m, field.name) || m[field.name] == null) continue;
    const v = m[field.name];
    const child = childPointer(pointer, field.name);
    if (field instanceof protobuf.MapField) {
      const entries: ProtoJson = {};
      const keyType = field.keyType;
      for (const [key, entry] of Object.entries(v as ProtoJson)) {
        setOwn(entries, mapKey(keyType, key), fromSingle(field, entry, childPointer(child, key)));
      }
      if (Object.keys(entries).length > 0) out[field.name] = entries;
    } else if (field.repeated) {
      const list = v as unknown[];
      if (list.length > 0) {
        out[field.name] = list.map((element, i) =>
          fromSingle(field, element, childPointer(child, i))
        );
      }
    } else {
      const implicit = field.partOf === null && !(field.resolvedType instanceof protobuf.Type);
      if (!(implicit && isRawDefault(v))) out[field.name] = fromSingle(field, v, child);
    }
  }
  return out;
}

/** Whether a value as protobufjs decodes it (a number, Long, string, …) is its type's default. */
function isRawDefault(value: unknown): boolean {
  if (value instanceof Uint8Array || typeof value !== "object" || value === null) {
    return isDefault(value);
  }
  const { low, high } = value as { low?: unknown; high?: unknown };
  return low === 0 && high === 0;
}

/** protobufjs keys 64-bit maps by an 8-character binary hash of the key; Envoy's JSON uses decimals. */
function mapKey(keyType: string, key: string): string {
  if (!(INT64.has(keyType) || UINT64.has(keyType)) || /^-?[0-9]+$/.test(key)) return key;
  return String(
    fromLong64(protobuf.util.longFromHash(key, UINT64.has(keyType)), UINT64.has(keyType)),
  );
}

function fromSingle(field: protobuf.Field, value: unknown, pointer: string): unknown {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) return fromMessage(resolved, value as object, pointer);
  if (resolved instanceof protobuf.Enum) {
    const name = resolved.valuesById[value as number];
    return name === undefined ? value : name;
  }
  return fromScalar(field.type, value);
}
