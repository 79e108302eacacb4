/**
 * A small, strict DER (X.690) writer and reader: exactly what the signing
 * pipeline needs to read a CSR and to write a leaf TBSCertificate without a
 * general ASN.1 library, whose object model costs several times the ECDSA
 * signature itself (see `pipeline.ts`). The reader refuses everything DER
 * forbids (indefinite or non-minimal lengths, trailing bytes), so what it
 * accepts has one meaning.
 */

/** Bytes backed by a plain `ArrayBuffer`, which is what WebCrypto accepts. */
export type Bytes = Uint8Array<ArrayBuffer>;

/** Thrown by the reader for bytes that are not the DER it was told to expect. */
export class DerError extends Error {}

/** Universal and context tags used by certificates and CSRs. */
export const Tag = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

// ---------------------------------------------------------------- writer

function lengthBytes(n: number): number[] {
  if (n < 0x80) return [n];
  const out: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) out.unshift(v & 0xff);
  return [0x80 | out.length, ...out];
}

/** Concatenates byte arrays. */
export function concat(parts: readonly Bytes[]): Bytes {
  let size = 0;
  for (const p of parts) size += p.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** One TLV: `tag`, the DER length of the concatenated `parts`, then the parts. */
export function tlv(tag: number, ...parts: Bytes[]): Bytes {
  let size = 0;
  for (const p of parts) size += p.length;
  const len = lengthBytes(size);
  const out = new Uint8Array(1 + len.length + size);
  out[0] = tag;
  out.set(len, 1);
  let at = 1 + len.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** `SEQUENCE { parts }`. */
export function sequence(...parts: Bytes[]): Bytes {
  return tlv(Tag.SEQUENCE, ...parts);
}

/** `[n] EXPLICIT` (constructed context tag) around `parts`. */
export function explicit(n: number, ...parts: Bytes[]): Bytes {
  return tlv(0xa0 | n, ...parts);
}

/** An OBJECT IDENTIFIER from its dotted form, e.g. `2.5.29.17`. */
export function oid(dotted: string): Bytes {
  const arcs = dotted.split(".").map(Number);
  const [a = 0, b = 0, ...rest] = arcs;
  const body: number[] = [];
  for (const arc of [a * 40 + b, ...rest]) {
    const septets: number[] = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) {
      septets.unshift(0x80 | (v & 0x7f));
    }
    body.push(...septets);
  }
  return tlv(Tag.OID, new Uint8Array(body));
}

/** A non-negative INTEGER from its big-endian magnitude (leading zeros are dropped, a sign byte added). */
export function unsignedInteger(magnitude: Bytes): Bytes {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const m = magnitude.subarray(i);
  if (m.length === 0) return tlv(Tag.INTEGER, new Uint8Array([0]));
  return (m[0]! & 0x80) ? tlv(Tag.INTEGER, new Uint8Array([0]), m) : tlv(Tag.INTEGER, m);
}

/** A small non-negative INTEGER. */
export function smallInteger(n: number): Bytes {
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return unsignedInteger(new Uint8Array(bytes));
}

/** A BOOLEAN (DER: TRUE is 0xff). */
export function boolean(value: boolean): Bytes {
  return tlv(Tag.BOOLEAN, new Uint8Array([value ? 0xff : 0]));
}

/** An OCTET STRING. */
export function octetString(bytes: Bytes): Bytes {
  return tlv(Tag.OCTET_STRING, bytes);
}

/** A BIT STRING; `unusedBits` is how many low bits of the last byte are padding (named bit lists). */
export function bitString(bytes: Bytes, unusedBits = 0): Bytes {
  return tlv(Tag.BIT_STRING, new Uint8Array([unusedBits]), bytes);
}

const utf8 = new TextEncoder();

/** A UTF8String. */
export function utf8String(text: string): Bytes {
  return tlv(Tag.UTF8_STRING, utf8.encode(text));
}

/** ASCII bytes for IA5String-based fields (URIs and DNS names in GeneralName). */
export function ascii(text: string): Bytes {
  return utf8.encode(text);
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, "0");
}

/**
 * A certificate Time: UTCTime for 1950–2049 and GeneralizedTime otherwise,
 * both in whole seconds with `Z`, as RFC 5280 §4.1.2.5 requires.
 */
export function time(ms: number): Bytes {
  const d = new Date(ms);
  const year = d.getUTCFullYear();
  const rest = pad(d.getUTCMonth() + 1, 2) + pad(d.getUTCDate(), 2) + pad(d.getUTCHours(), 2) +
    pad(d.getUTCMinutes(), 2) + pad(d.getUTCSeconds(), 2) + "Z";
  if (year >= 1950 && year < 2050) {
    return tlv(Tag.UTC_TIME, ascii(pad(year % 100, 2) + rest));
  }
  return tlv(Tag.GENERALIZED_TIME, ascii(pad(year, 4) + rest));
}

// ---------------------------------------------------------------- reader

/** Where one TLV sits in a buffer. */
export interface Tlv {
  tag: number;
  /** Offset of the tag byte. */
  start: number;
  /** Offset of the first content byte. */
  contentStart: number;
  /** Offset just past the last content byte. */
  end: number;
}

/** Reads the TLV at `offset`, which must end at or before `limit`. */
export function readTlv(buf: Bytes, offset: number, limit = buf.length): Tlv {
  if (offset + 2 > limit) throw new DerError("Truncated DER: no room for a tag and a length");
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError("Multi-byte DER tags are not supported");
  let len = buf[offset + 1]!;
  let at = offset + 2;
  if (len & 0x80) {
    const count = len & 0x7f;
    if (count === 0) throw new DerError("Indefinite lengths are not DER");
    if (count > 4) throw new DerError("DER length is too large");
    if (at + count > limit) throw new DerError("Truncated DER length");
    len = 0;
    for (let i = 0; i < count; i++) len = len * 256 + buf[at + i]!;
    if (buf[at] === 0 || len < 0x80) throw new DerError("DER length is not minimal");
    at += count;
  }
  if (at + len > limit) throw new DerError("Truncated DER: content runs past its parent");
  return { tag, start: offset, contentStart: at, end: at + len };
}

/** Reads the one TLV that must fill `buf` exactly. */
export function readRoot(buf: Bytes): Tlv {
  const t = readTlv(buf, 0);
  if (t.end !== buf.length) throw new DerError("Trailing bytes after the DER value");
  return t;
}

/** The TLVs inside a constructed `parent`, which must fill it exactly. */
export function children(buf: Bytes, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.contentStart; at < parent.end;) {
    const t = readTlv(buf, at, parent.end);
    out.push(t);
    at = t.end;
  }
  return out;
}

/** `t` itself after checking its tag; `what` names it in the error. */
export function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (!t) throw new DerError(`Missing ${what}`);
  if (t.tag !== tag) {
    throw new DerError(`Unexpected tag 0x${t.tag.toString(16)} for ${what}`);
  }
  return t;
}

/** The content bytes of `t` (a view, not a copy). */
export function contentOf(buf: Bytes, t: Tlv): Bytes {
  return buf.subarray(t.contentStart, t.end);
}

/** The whole encoding of `t`, header included (a view, not a copy). */
export function bytesOf(buf: Bytes, t: Tlv): Bytes {
  return buf.subarray(t.start, t.end);
}

/** The dotted form of the OBJECT IDENTIFIER `t`. */
export function readOid(buf: Bytes, t: Tlv): string {
  expectTag(t, Tag.OID, "OBJECT IDENTIFIER");
  const arcs: number[] = [];
  let v = 0;
  for (let i = t.contentStart; i < t.end; i++) {
    const b = buf[i]!;
    v = v * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      if (arcs.length === 0) {
        const first = v < 80 ? Math.floor(v / 40) : 2;
        arcs.push(first, v - first * 40);
      } else {
        arcs.push(v);
      }
      v = 0;
    }
  }
  if (t.end === t.contentStart || (buf[t.end - 1]! & 0x80)) {
    throw new DerError("Malformed OBJECT IDENTIFIER");
  }
  return arcs.join(".");
}

/** The content of a BIT STRING with no unused bits (keys and signatures). */
export function readBitStringBytes(buf: Bytes, t: Tlv): Bytes {
  expectTag(t, Tag.BIT_STRING, "BIT STRING");
  if (t.end === t.contentStart || buf[t.contentStart] !== 0) {
    throw new DerError("BIT STRING has unused bits where whole bytes are expected");
  }
  return buf.subarray(t.contentStart + 1, t.end);
}

const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/** The text of a string-typed TLV (UTF8String, PrintableString, IA5String). */
export function readString(buf: Bytes, t: Tlv): string {
  try {
    return utf8Decoder.decode(contentOf(buf, t));
  } catch {
    throw new DerError("String is not valid UTF-8");
  }
}

// ---------------------------------------------------------------- ECDSA signatures

/** WebCrypto's raw `r || s` ECDSA signature as the DER `ECDSA-Sig-Value` X.509 wants. */
export function ecdsaRawToDer(raw: Bytes): Bytes {
  const half = raw.length / 2;
  return sequence(unsignedInteger(raw.subarray(0, half)), unsignedInteger(raw.subarray(half)));
}

/** A DER `ECDSA-Sig-Value` as WebCrypto's raw `r || s`, each padded to `size` bytes. */
export function ecdsaDerToRaw(der: Bytes, size: number): Bytes {
  const root = expectTag(readRoot(der), Tag.SEQUENCE, "ECDSA-Sig-Value");
  const parts = children(der, root);
  if (parts.length !== 2) throw new DerError("ECDSA-Sig-Value must hold two INTEGERs");
  const out = new Uint8Array(size * 2);
  parts.forEach((p, i) => {
    expectTag(p, Tag.INTEGER, "ECDSA signature component");
    let v = contentOf(der, p);
    if (v.length > 1 && v[0] === 0 && !(v[1]! & 0x80)) throw new DerError("INTEGER is not minimal");
    if (v[0]! & 0x80) throw new DerError("ECDSA signature component is negative");
    while (v.length > 0 && v[0] === 0) v = v.subarray(1);
    if (v.length > size) throw new DerError("ECDSA signature component is too large");
    out.set(v, (i + 1) * size - v.length);
  });
  return out;
}
