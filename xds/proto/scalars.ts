/**
 * Scalar and enum values of the strict codec: the JSON a field may hold for
 * each protobuf scalar type (range-checked, 64-bit as safe integers or decimal
 * strings, bytes as base64), and the canonical form a decoded value takes.
 *
 * @module
 */
import protobuf from "protobufjs";
import { bare, describe, hasOwn, invalid, type Site } from "./site.ts";

const INT32 = new Set(["int32", "sint32", "sfixed32"]);
const UINT32 = new Set(["uint32", "fixed32"]);
export const INT64 = new Set(["int64", "sint64", "sfixed64"]);
export const UINT64 = new Set(["uint64", "fixed64"]);

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

export function fromLong64(value: unknown, unsigned: boolean): number | string {
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

export function toBase64(bytes: Uint8Array): string {
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

export function scalarValue(type: string, value: unknown, site: Site): unknown {
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

export function fromScalar(type: string, value: unknown): unknown {
  if (INT64.has(type) || UINT64.has(type)) return fromLong64(value, UINT64.has(type));
  if (type === "float") return shortestFloat(value as number);
  if (type === "bytes") return toBase64(value as Uint8Array);
  return value;
}

export function scalarDefault(type: string): unknown {
  if (type === "bool") return false;
  if (type === "string" || type === "bytes") return "";
  return 0;
}

export function isDefault(value: unknown): boolean {
  return value === 0 || value === "" || value === false ||
    (value instanceof Uint8Array && value.length === 0);
}

export function enumValue(type: protobuf.Enum, value: unknown, site: Site): number {
  if (typeof value === "string" && hasOwn(type.values, value)) return type.values[value]!;
  if (typeof value === "number" && type.valuesById[value] !== undefined) return value;
  throw invalid(site, `${describe(value)} is not a value of enum ${bare(type)}`);
}
