/**
 * The first step of the signing pipeline: is this a well-formed PKCS#10 CSR
 * for an ECDSA P-256 key, signed by that key? It reads the CSR with the
 * strict DER reader in `der.ts` rather than `@peculiar/x509`, whose parse
 * alone costs about half an ECDSA signature (see `pipeline.ts`); tests
 * cross-check what it reads against the library.
 */
import { InvalidError } from "../core/errors.ts";
import {
  type Bytes,
  bytesOf,
  children,
  contentOf,
  DerError,
  ecdsaDerToRaw,
  expectTag,
  readBitStringBytes,
  readOid,
  readRoot,
  readString,
  Tag,
  type Tlv,
} from "./der.ts";
import { describeSpki, P256 } from "./keys.ts";
import { decodePem, PemError } from "./pem.ts";

/** The largest CSR accepted, in characters of PEM. */
export const MAX_CSR_BYTES = 8 * 1024;

/** One name a CSR asks for in its subjectAltName. */
export interface RequestedName {
  /** `uri`, `dns`, `ip`, `email` or `other` (otherName, directoryName, …). */
  type: "uri" | "dns" | "ip" | "email" | "other";
  /** The value as text; an IP address in its usual notation. */
  value: string;
}

/** What a checked CSR holds. */
export interface CheckedCsr {
  /** The DER SubjectPublicKeyInfo, copied verbatim into the certificate. */
  spki: Bytes;
  /** The subjectPublicKey bits, for the subject key identifier. */
  publicKey: Bytes;
  /** Every commonName value of the subject. */
  commonNames: string[];
  /** Every subjectAltName entry requested. */
  names: RequestedName[];
  /** True when the CSR asks for basicConstraints CA:TRUE. */
  wantsCa: boolean;
}

const OID = {
  ecPublicKey: "1.2.840.10045.2.1",
  prime256v1: "1.2.840.10045.3.1.7",
  commonName: "2.5.4.3",
  extensionRequest: "1.2.840.113549.1.9.14",
  subjectAltName: "2.5.29.17",
  basicConstraints: "2.5.29.19",
} as const;

const HASH_OF_SIGNATURE: Readonly<Record<string, string>> = {
  "1.2.840.10045.4.3.2": "SHA-256",
  "1.2.840.10045.4.3.3": "SHA-384",
  "1.2.840.10045.4.3.4": "SHA-512",
};

function refuse(message: string): InvalidError {
  return new InvalidError(`Invalid CSR: ${message}`, [{ pointer: "/csr", message }]);
}

/**
 * Checks `pem` is one PKCS#10 `CERTIFICATE REQUEST` of at most
 * {@link MAX_CSR_BYTES}, well-formed, for an ECDSA P-256 key, and that its
 * self-signature verifies. Everything else is an `InvalidError` at pointer
 * `/csr` that names what was wrong.
 */
export async function checkCsr(pem: string): Promise<CheckedCsr> {
  if (typeof pem !== "string" || pem.length === 0) throw refuse("CSR is empty");
  if (pem.length > MAX_CSR_BYTES) {
    throw refuse(`CSR is too large: ${pem.length} bytes, at most ${MAX_CSR_BYTES}`);
  }
  let der: Bytes;
  try {
    const blocks = decodePem(pem);
    if (blocks.length !== 1) {
      throw refuse(
        `Expected exactly one "CERTIFICATE REQUEST" PEM block, found ${blocks.length}`,
      );
    }
    const block = blocks[0]!;
    if (block.label !== "CERTIFICATE REQUEST") {
      throw refuse(`Expected a "CERTIFICATE REQUEST" PEM block, found "${block.label}"`);
    }
    der = block.der;
  } catch (e) {
    if (e instanceof PemError) throw refuse(e.message);
    throw e;
  }
  let parsed: ParsedCsr;
  try {
    parsed = parseCsr(der);
  } catch (e) {
    if (e instanceof DerError) throw refuse(`CSR is not a valid PKCS#10 request: ${e.message}`);
    throw e;
  }
  await verifyCsrSignature(parsed);
  return parsed.checked;
}

interface ParsedCsr {
  checked: CheckedCsr;
  info: Bytes;
  signatureOid: string;
  signature: Bytes;
}

/** Reads the DER of a CertificationRequest (RFC 2986); throws `DerError` or `InvalidError`. */
function parseCsr(der: Bytes): ParsedCsr {
  const root = expectTag(readRoot(der), Tag.SEQUENCE, "CertificationRequest");
  const [infoTlv, sigAlgTlv, sigTlv, ...extra] = children(der, root);
  if (extra.length > 0) throw new DerError("CertificationRequest has extra fields");
  const info = expectTag(infoTlv, Tag.SEQUENCE, "certificationRequestInfo");
  const sigAlg = expectTag(sigAlgTlv, Tag.SEQUENCE, "signatureAlgorithm");
  const [versionTlv, subjectTlv, spkiTlv, attributesTlv, ...more] = children(der, info);
  if (more.length > 0) throw new DerError("certificationRequestInfo has extra fields");
  const version = expectTag(versionTlv, Tag.INTEGER, "version");
  if (version.end - version.contentStart !== 1 || der[version.contentStart] !== 0) {
    throw new DerError("CSR version must be 1 (encoded 0)");
  }
  const subject = expectTag(subjectTlv, Tag.SEQUENCE, "subject");
  const spki = expectTag(spkiTlv, Tag.SEQUENCE, "subjectPKInfo");
  // RFC 2986 requires the attributes field, but some generators leave out an empty one.
  const attributes = attributesTlv && expectTag(attributesTlv, 0xa0, "attributes");

  const [algTlv, keyTlv] = children(der, spki);
  const alg = children(der, expectTag(algTlv, Tag.SEQUENCE, "key algorithm"));
  const keyOid = readOid(der, expectTag(alg[0], Tag.OID, "key algorithm"));
  const curveOid = alg[1]?.tag === Tag.OID ? readOid(der, alg[1]) : undefined;
  const spkiBytes = bytesOf(der, spki);
  if (keyOid !== OID.ecPublicKey || curveOid !== OID.prime256v1) {
    const what = describeSpki(spkiBytes, `OID ${curveOid ?? keyOid}`);
    throw refuse(`Key algorithm "${what}" is not allowed: use ECDSA P-256`);
  }
  const publicKey = readBitStringBytes(der, expectTag(keyTlv, Tag.BIT_STRING, "public key"));

  const sigAlgParts = children(der, sigAlg);
  const signatureOid = readOid(der, expectTag(sigAlgParts[0], Tag.OID, "signature algorithm"));
  const signature = readBitStringBytes(der, expectTag(sigTlv, Tag.BIT_STRING, "signature"));

  const commonNames = readCommonNames(der, subject);
  const { names, wantsCa } = attributes
    ? readExtensionRequest(der, attributes)
    : { names: [], wantsCa: false };
  return {
    checked: { spki: spkiBytes, publicKey, commonNames, names, wantsCa },
    info: bytesOf(der, info),
    signatureOid,
    signature,
  };
}

function readCommonNames(der: Bytes, subject: Tlv): string[] {
  const out: string[] = [];
  for (const rdn of children(der, subject)) {
    for (const atv of children(der, expectTag(rdn, Tag.SET, "relative distinguished name"))) {
      const [type, value] = children(der, expectTag(atv, Tag.SEQUENCE, "attribute"));
      if (readOid(der, expectTag(type, Tag.OID, "attribute type")) === OID.commonName) {
        if (!value) throw new DerError("commonName has no value");
        out.push(readString(der, value));
      }
    }
  }
  return out;
}

function readExtensionRequest(
  der: Bytes,
  attributes: Tlv,
): { names: RequestedName[]; wantsCa: boolean } {
  const names: RequestedName[] = [];
  let wantsCa = false;
  for (const attr of children(der, attributes)) {
    const [type, values] = children(der, expectTag(attr, Tag.SEQUENCE, "attribute"));
    if (readOid(der, expectTag(type, Tag.OID, "attribute type")) !== OID.extensionRequest) {
      continue;
    }
    for (const exts of children(der, expectTag(values, Tag.SET, "attribute values"))) {
      for (const ext of children(der, expectTag(exts, Tag.SEQUENCE, "extensions"))) {
        const parts = children(der, expectTag(ext, Tag.SEQUENCE, "extension"));
        const extOid = readOid(der, expectTag(parts[0], Tag.OID, "extension id"));
        const value = expectTag(parts.at(-1), Tag.OCTET_STRING, "extension value");
        if (extOid === OID.subjectAltName) names.push(...readGeneralNames(contentOf(der, value)));
        if (extOid === OID.basicConstraints) wantsCa ||= readIsCa(contentOf(der, value));
      }
    }
  }
  return { names, wantsCa };
}

function readGeneralNames(der: Bytes): RequestedName[] {
  const root = expectTag(readRoot(der), Tag.SEQUENCE, "subjectAltName");
  return children(der, root).map((n): RequestedName => {
    switch (n.tag) {
      case 0x86:
        return { type: "uri", value: readString(der, n) };
      case 0x82:
        return { type: "dns", value: readString(der, n) };
      case 0x81:
        return { type: "email", value: readString(der, n) };
      case 0x87:
        return { type: "ip", value: formatIp(contentOf(der, n)) };
      default:
        return { type: "other", value: `GeneralName [${n.tag & 0x1f}]` };
    }
  });
}

function readIsCa(der: Bytes): boolean {
  const root = expectTag(readRoot(der), Tag.SEQUENCE, "basicConstraints");
  const first = children(der, root)[0];
  return first?.tag === Tag.BOOLEAN && der[first.contentStart] !== 0;
}

/** An IPv4 or IPv6 address from its 4 or 16 bytes. */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return [...bytes].join(".");
  if (bytes.length === 16) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
    return groups.join(":").replace(/(^|:)0(:0)+(:|$)/, "::");
  }
  return `invalid IP (${bytes.length} bytes)`;
}

async function verifyCsrSignature(csr: ParsedCsr): Promise<void> {
  const hash = HASH_OF_SIGNATURE[csr.signatureOid];
  if (!hash) {
    throw refuse(
      `Signature algorithm "${csr.signatureOid}" is not allowed: use ECDSA with SHA-256`,
    );
  }
  let key: CryptoKey;
  try {
    key = await crypto.subtle.importKey("spki", csr.checked.spki, P256, false, ["verify"]);
  } catch {
    throw refuse("CSR public key is not a valid P-256 point");
  }
  let raw: Bytes;
  try {
    raw = ecdsaDerToRaw(csr.signature, 32);
  } catch {
    throw refuse("CSR signature is not a valid ECDSA signature");
  }
  if (!await crypto.subtle.verify({ name: "ECDSA", hash }, key, raw, csr.info)) {
    throw refuse("CSR signature does not verify: the request was altered or not signed by its key");
  }
}
