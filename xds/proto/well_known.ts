/**
 * The well-known types with a JSON form of their own, as Envoy's docs write
 * them: wrappers as bare scalars, Duration as `"5s"`, Timestamp as RFC 3339,
 * Struct/Value/ListValue as plain JSON. (`Any` needs the whole message walk,
 * so it lives in `codec.ts`.)
 *
 * @module
 */
import type { ProtoJson, Site } from "./site.ts";
import { childPointer, describe, hasOwn, invalid, isPlainObject, setOwn } from "./site.ts";
import { fromLong64, isDefault } from "./scalars.ts";

export const WRAPPERS = new Set(
  ["Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes"].map((t) =>
    `.google.protobuf.${t}Value`
  ),
);
export const JSON_WKT = new Set([
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

/**
 * `objectForm` converts the `{seconds, nanos}` form with the message walk,
 * which this module cannot import without a cycle.
 */
export function durationValue(value: unknown, site: Site, objectForm: () => ProtoJson): ProtoJson {
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
    const fields = objectForm();
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

export function fromDuration(message: ProtoJson): string {
  const seconds = Number(fromLong64(message.seconds ?? 0, false));
  const nanos = Number(message.nanos ?? 0);
  const negative = seconds < 0 || nanos < 0;
  return `${negative ? "-" : ""}${Math.abs(seconds)}${fraction(Math.abs(nanos))}s`;
}

const TIMESTAMP =
  /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?(Z|[+-][0-9]{2}:[0-9]{2})$/;
/** 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range Timestamp allows. */
const [MIN_TIMESTAMP, MAX_TIMESTAMP] = [-62_135_596_800, 253_402_300_799];

/**
 * `objectForm` converts the `{seconds, nanos}` form with the message walk,
 * which this module cannot import without a cycle.
 */
export function timestampValue(value: unknown, site: Site, objectForm: () => ProtoJson): ProtoJson {
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
    const fields = objectForm();
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

export function fromTimestamp(message: ProtoJson): string {
  const seconds = Number(fromLong64(message.seconds ?? 0, false));
  const iso = new Date(seconds * 1000).toISOString();
  return `${iso.slice(0, 19)}${fraction(Number(message.nanos ?? 0))}Z`;
}

function withoutDefaults(message: ProtoJson): ProtoJson {
  return Object.fromEntries(Object.entries(message).filter(([, v]) => !isDefault(v)));
}

/** A plain JSON value as a `google.protobuf.Value`; `at` locates it inside the Struct for errors. */
export function jsonToValue(value: unknown, site: Site, at: string): ProtoJson {
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

export function jsonToList(value: unknown, site: Site, at: string): ProtoJson {
  if (!Array.isArray(value)) throw invalid(site, `expected an array, got ${describe(value)}`);
  return { values: value.map((v, i) => jsonToValue(v, site, childPointer(at, i))) };
}

export function jsonToStruct(value: unknown, site: Site, at: string): ProtoJson {
  if (!isPlainObject(value)) {
    throw invalid(site, `expected a JSON object, got ${describe(value)}`);
  }
  const fields: ProtoJson = {};
  for (const [key, v] of Object.entries(value)) {
    setOwn(fields, key, jsonToValue(v, site, childPointer(at, key)));
  }
  return { fields };
}

export function valueToJson(message: ProtoJson): unknown {
  // Decoded messages inherit defaults from their prototype; only own keys were on the wire.
  if (hasOwn(message, "struct_value")) return structToJson(message.struct_value as ProtoJson);
  if (hasOwn(message, "list_value")) return listToJson(message.list_value as ProtoJson);
  for (const kind of ["string_value", "number_value", "bool_value"]) {
    if (hasOwn(message, kind)) return message[kind];
  }
  return null;
}

export function listToJson(message: ProtoJson): unknown[] {
  return ((message.values ?? []) as ProtoJson[]).map(valueToJson);
}

export function structToJson(message: ProtoJson): ProtoJson {
  const out: ProtoJson = {};
  for (const [key, v] of Object.entries((message.fields ?? {}) as ProtoJson)) {
    setOwn(out, key, valueToJson(v as ProtoJson));
  }
  return out;
}
