/**
 * Where a value sits in a message and how the strict codec says what is wrong
 * there: the error type, the `at /pointer (type)` wording, and the small
 * object helpers every part of the codec shares.
 *
 * @module
 */
import type protobuf from "protobufjs";

/** A message as a plain object keyed by proto field names. */
export type ProtoJson = Record<string, unknown>;

/** An object that does not fit the schema; thrown by `encodeStrict` and `decodeStrict` (`codec.ts`). */
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

/** Where a value sits: the field `label` of the message at `pointer`, whose type is `owner`. */
export interface Site {
  pointer: string;
  owner: string;
  /** The field, with `[i]` or `["key"]` for an element; `null` for the top-level value. */
  label: string | null;
}

/**
 * Full names (with the leading dot) by type, read once: protobufjs builds
 * `fullName` anew on every read by walking up the namespaces, which was
 * the largest single cost of encoding a Listener (`scripts/bench/proxyless_push.ts`).
 */
const FULL_NAMES = new WeakMap<protobuf.ReflectionObject, string>();

/** `type.fullName`, e.g. `.envoy.config.listener.v3.Listener`. */
export function fullName(type: protobuf.ReflectionObject): string {
  let name = FULL_NAMES.get(type);
  if (name === undefined) {
    name = type.fullName;
    FULL_NAMES.set(type, name);
  }
  return name;
}

/** The full name without the leading dot. */
export function bare(type: protobuf.ReflectionObject): string {
  return fullName(type).slice(1);
}

export function where(pointer: string, owner: string): string {
  return `at ${pointer === "" ? "/" : pointer} (${owner})`;
}

export function invalid(site: Site, detail: string): ProtoSchemaError {
  const subject = site.label === null ? "Invalid value" : `Invalid value for field "${site.label}"`;
  return new ProtoSchemaError(
    `${subject} ${where(site.pointer, site.owner)}: ${detail}`,
    site.pointer,
    site.owner,
  );
}

export function describe(value: unknown): string {
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

export function childPointer(pointer: string, key: string | number): string {
  return `${pointer}/${String(key).replaceAll("~", "~0").replaceAll("/", "~1")}`;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

export function hasOwn(object: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(object, key);
}

/** Sets a key even when it is `__proto__`, which plain assignment would treat as the prototype. */
export function setOwn(object: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(object, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}
