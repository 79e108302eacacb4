/**
 * The DER of the end-entity certificates the CA issues, written directly:
 * the template is small and fixed (RFC 5280 profile plus SPIFFE X509-SVID
 * rules), and building it with a general ASN.1 library costs several times
 * the ECDSA signature that must follow. Tests check the output against
 * `@peculiar/x509` (same extensions as a library-built reference) and
 * `openssl verify`.
 */
import { createHash } from "node:crypto";
import {
  ascii,
  bitString,
  boolean,
  type Bytes,
  bytesOf,
  children,
  concat,
  ecdsaRawToDer,
  expectTag,
  explicit,
  octetString,
  oid,
  readRoot,
  sequence,
  smallInteger,
  Tag,
  time,
  tlv,
  unsignedInteger,
  utf8String,
} from "./der.ts";

/** One subjectAltName entry of an issued certificate. */
export type GeneralName =
  | { type: "uri"; value: string }
  | { type: "dns"; value: string }
  | { type: "ip"; value: Bytes };

/** Extended key usages the CA issues. */
export const EKU = {
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
} as const;

/** Everything that varies between two leaf certificates. */
export interface LeafTemplate {
  /** Positive serial number, big-endian magnitude. */
  serial: Bytes;
  /** The subject's single commonName. */
  commonName: string;
  /** DER SubjectPublicKeyInfo of the subject's key. */
  spki: Bytes;
  /** The subjectPublicKey bits of `spki`, hashed into the subject key identifier. */
  publicKey: Bytes;
  /** subjectAltName entries, in order. */
  names: GeneralName[];
  /** Extended key usage OIDs, in order. */
  extendedKeyUsages: string[];
  /** Milliseconds since the epoch; whole seconds are encoded. */
  notBefore: number;
  notAfter: number;
}

/** What the issuing CA contributes to every leaf, encoded once. */
export interface IssuerParts {
  /** The issuer's subject Name, DER, copied byte for byte (RFC 5280 name chaining). */
  name: Bytes;
  /** The issuer's subject key identifier, for the leaf's authority key identifier. */
  keyId: Bytes;
}

const ECDSA_WITH_SHA256 = sequence(oid("1.2.840.10045.4.3.2"));
const VERSION_3 = explicit(0, smallInteger(2));
const OID_CN = oid("2.5.4.3");

const OID_SKI = oid("2.5.29.14");
const OID_AKI = oid("2.5.29.35");
const OID_SAN = oid("2.5.29.17");
const CRITICAL = boolean(true);

function extension(id: Bytes, critical: boolean, value: Bytes): Bytes {
  return critical ? sequence(id, CRITICAL, octetString(value)) : sequence(id, octetString(value));
}

// Fixed for every leaf: end entity (CA:FALSE is the DEFAULT, so an empty
// SEQUENCE), key usage digitalSignature only (bit 0, seven unused bits).
const BASIC_CONSTRAINTS = extension(oid("2.5.29.19"), true, sequence());
const KEY_USAGE = extension(oid("2.5.29.15"), true, bitString(new Uint8Array([0x80]), 7));
const ekuCache = new Map<string, Bytes>();

function extendedKeyUsage(oids: string[]): Bytes {
  const key = oids.join(",");
  let ext = ekuCache.get(key);
  if (!ext) {
    ext = extension(oid("2.5.29.37"), false, sequence(...oids.map(oid)));
    ekuCache.set(key, ext);
  }
  return ext;
}

function generalName(n: GeneralName): Bytes {
  switch (n.type) {
    case "uri":
      return tlv(0x86, ascii(n.value));
    case "dns":
      return tlv(0x82, ascii(n.value));
    case "ip":
      return tlv(0x87, n.value);
  }
}

/** The RFC 5280 §4.2.1.2 method-1 key identifier: SHA-1 of the subjectPublicKey bits. */
export function keyIdentifier(publicKey: Uint8Array): Bytes {
  return new Uint8Array(createHash("sha1").update(publicKey).digest());
}

/** The DER TBSCertificate of a leaf described by `template`, issued by `issuer`. */
export function encodeLeafTbs(template: LeafTemplate, issuer: IssuerParts): Bytes {
  const subject = sequence(tlv(Tag.SET, sequence(OID_CN, utf8String(template.commonName))));
  const extensions = [
    BASIC_CONSTRAINTS,
    KEY_USAGE,
    extendedKeyUsage(template.extendedKeyUsages),
    extension(OID_SKI, false, octetString(keyIdentifier(template.publicKey))),
    extension(OID_AKI, false, sequence(tlv(0x80, issuer.keyId))),
    // Non-critical: the subject is not empty (RFC 5280 §4.2.1.6).
    extension(OID_SAN, false, sequence(...template.names.map(generalName))),
  ];
  return sequence(
    VERSION_3,
    unsignedInteger(template.serial),
    ECDSA_WITH_SHA256,
    issuer.name,
    sequence(time(template.notBefore), time(template.notAfter)),
    subject,
    template.spki,
    explicit(3, sequence(...extensions)),
  );
}

/** Signs `tbs` with an ECDSA P-256 key and returns the DER Certificate. */
export async function signCertificate(tbs: Bytes, key: CryptoKey): Promise<Bytes> {
  const raw = new Uint8Array(
    await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key, tbs),
  );
  return sequence(tbs, ECDSA_WITH_SHA256, bitString(ecdsaRawToDer(raw)));
}

/** The issuer's subject Name, DER, from its certificate's DER. */
export function subjectNameOf(certificate: Bytes): Bytes {
  const cert = expectTag(readRoot(certificate), Tag.SEQUENCE, "Certificate");
  const tbs = expectTag(children(certificate, cert)[0], Tag.SEQUENCE, "TBSCertificate");
  const fields = children(certificate, tbs);
  // With the explicit version present, subject is the sixth field.
  const offset = fields[0]?.tag === 0xa0 ? 1 : 0;
  const subject = expectTag(fields[4 + offset], Tag.SEQUENCE, "subject");
  return concat([bytesOf(certificate, subject)]);
}
