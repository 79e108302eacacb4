/**
 * A strict protobuf codec for Envoy's xDS types, driven by the descriptor
 * that `scripts/gen_xds_protos.ts` compiles from Envoy's `.proto` files. The
 * descriptor is imported as JSON, so the bundled program carries it and reads
 * nothing from disk.
 *
 * ## Why by hand, not `@bufbuild/protobuf` (measured and tested 2026-12-07)
 *
 * `@bufbuild/protobuf` refuses unknown fields itself and encodes 2.1× faster
 * (`scripts/bench/codec.ts`: 37.7 against 77.9 µs a resource over the 94
 * golden resources). It does not keep three contracts of this module that
 * `codec_test.ts` pins (`scripts/bench/codec_library_test.ts` asserts each on
 * the library): it takes numbers as strings (`port_value: "80"`), its errors
 * name the message type but not where it sits in the document, and it decodes
 * 64-bit integers as strings instead of the canonical numbers below. Keeping
 * them means walking the message ourselves anyway, and the time it would save
 * is paid once per changed resource body (`xds/resource_encoder.ts` shares the
 * bytes among every stream), so this module stays (docs/architecture.md).
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
import { typeUrl } from "../../core/xds_type_urls.ts";
import descriptor from "./envoy_descriptor.json" with { type: "json" };
import {
  bare,
  childPointer,
  describe,
  fullName,
  hasOwn,
  invalid,
  isPlainObject,
  type ProtoJson,
  ProtoSchemaError,
  setOwn,
  type Site,
  where,
} from "./site.ts";
import {
  enumValue,
  fromLong64,
  fromScalar,
  INT64,
  isDefault,
  scalarDefault,
  scalarValue,
  toBase64,
  UINT64,
} from "./scalars.ts";
import {
  durationValue,
  fromDuration,
  fromTimestamp,
  JSON_WKT,
  jsonToList,
  jsonToStruct,
  jsonToValue,
  listToJson,
  structToJson,
  timestampValue,
  valueToJson,
  WRAPPERS,
} from "./well_known.ts";

export { type ProtoJson, ProtoSchemaError } from "./site.ts";

/** An `Any` whose payload is already encoded, as {@link packAny} makes it. */
export interface PackedAny {
  type_url: string;
  value: Uint8Array;
}

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
export function encodeStrict(
  typeName: string,
  value: unknown,
  options: { reuse?: AnyReuse } = {},
): Uint8Array {
  const type = lookupType(typeName);
  reuse = options.reuse ?? null;
  try {
    const message = toMessage(type, value, { pointer: "", owner: bare(type), label: null }, "");
    return type.encode(message).finish();
  } finally {
    reuse = null;
  }
}

/**
 * What {@link encodeStrict} keeps of the `Any`s it met, keyed by the object
 * that holds each one (`{"@type": …}`), for callers whose bodies never change
 * once built and share parts (`xds/resource_encoder.ts`): the filter chain of
 * every server Listener of a service port is one object
 * (`xds/generate/proxyless_security.ts`), and its connection manager, RBAC
 * and TLS `Any`s are then checked and encoded once, not once per Listener.
 * An `Any` met once is only marked (`null`); its bytes are kept from the
 * second time on, so bodies that share nothing cost no extra memory.
 */
export type AnyReuse = WeakMap<object, ProtoJson | null>;

/**
 * The reuse map of the {@link encodeStrict} call under way (the walk is
 * synchronous); module state rather than a parameter of every function of
 * the walk.
 */
let reuse: AnyReuse | null = null;

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
// Any and ordinary messages: the walk over the schema

function anyValue(type: protobuf.Type, value: unknown, site: Site, pointer: string): ProtoJson {
  if (!isPlainObject(value)) throw invalid(site, `expected an object, got ${describe(value)}`);
  if (!hasOwn(value, "@type")) {
    // The raw form, e.g. from packAny().
    if (!hasOwn(value, "type_url")) {
      throw invalid(site, 'expected an Any with "@type" (or "type_url" and "value")');
    }
    return toFields(type, value, site, pointer);
  }
  const known = reuse?.get(value);
  if (known) return known;
  const url = value["@type"];
  const name = typeof url === "string" ? url.slice(url.lastIndexOf("/") + 1) : "";
  const inner = name === "" ? undefined : findType(name);
  if (typeof url !== "string" || inner === undefined) {
    throw invalid(site, `unknown type ${describe(url)} in "@type"`);
  }
  let message: ProtoJson;
  if (JSON_WKT.has(fullName(inner))) {
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
  const any = { type_url: url, value: inner.encode(message).finish() };
  reuse?.set(value, known === null ? any : null);
  return any;
}

function fromAny(message: ProtoJson, pointer: string): ProtoJson {
  const url = hasOwn(message, "type_url") ? String(message.type_url) : "";
  const bytes = hasOwn(message, "value") ? message.value as Uint8Array : new Uint8Array();
  const inner = url === "" ? undefined : findType(url.slice(url.lastIndexOf("/") + 1));
  if (inner === undefined) {
    return bytes.length === 0 ? { type_url: url } : { type_url: url, value: toBase64(bytes) };
  }
  const decoded = fromMessage(inner, inner.decode(bytes), pointer);
  return JSON_WKT.has(fullName(inner))
    ? { "@type": url, value: decoded }
    : { "@type": url, ...(decoded as ProtoJson) };
}

// ---------------------------------------------------------------------------
// Messages

/** The value of a message-typed position (field, element, top level) as protobufjs encodes it. */
function toMessage(type: protobuf.Type, value: unknown, site: Site, pointer: string): ProtoJson {
  const name = fullName(type);
  if (WRAPPERS.has(name)) {
    const inner = scalarValue(type.fields.value!.type, value, site);
    return isDefault(inner) ? {} : { value: inner };
  }
  switch (name) {
    case ".google.protobuf.Any":
      return anyValue(type, value, site, pointer);
    case ".google.protobuf.Duration":
      return durationValue(value, site, () => toFields(type, value, site, pointer));
    case ".google.protobuf.Timestamp":
      return timestampValue(value, site, () => toFields(type, value, site, pointer));
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
  const name = fullName(type);
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
