/**
 * The CA's own certificates: the templates of a generation's root and of the
 * intermediate that signs for it. They are built with `@peculiar/x509`:
 * a CA certificate is made once a year, not once per request, so the
 * library's cost does not matter here as it does for leaves (`leaf.ts`).
 */
import { createHash } from "node:crypto";
import type { Bytes } from "./der.ts";
import type { SigningKey } from "./keys.ts";
import { keyIdentifier } from "./leaf.ts";
import { x509 } from "./x509.ts";

const DAY_MS = 24 * 60 * 60 * 1000;
/** Lifetime of a root: 10 years. */
export const ROOT_TTL_MS = 3650 * DAY_MS;
/** Lifetime of an intermediate: 1 year (never beyond its root). */
export const INTERMEDIATE_TTL_MS = 365 * DAY_MS;

const ALGORITHM = { name: "ECDSA", hash: "SHA-256" } as const;
/** Backdating, so a peer whose clock is a little behind accepts a certificate made just now. */
const BACKDATE_MS = 60_000;

/** A certificate with the forms of it the CA keeps using. */
export interface CertFile {
  cert: x509.X509Certificate;
  der: Bytes;
  pem: string;
}

/** The {@link CertFile} of a DER certificate. */
export function certFile(der: Bytes): CertFile {
  const cert = new x509.X509Certificate(der);
  return { cert, der, pem: cert.toString("pem") + "\n" };
}

/** SHA-256 of `der`, lower-case hex without colons. */
export function fingerprintOf(der: Uint8Array): string {
  return createHash("sha256").update(der).digest("hex");
}

/** What a CA certificate of generation `id` is made from. */
export interface CaCertificateRequest {
  /** The generation, named in the subject so two generations' CAs are told apart. */
  id: number;
  trustDomain: string;
  /** The key the certificate certifies. */
  key: SigningKey;
  /** ms since the epoch. */
  now: number;
}

/** A self-signed root: a CA for certificate and CRL signing only, valid {@link ROOT_TTL_MS}. */
export async function createRootCertificate(request: CaCertificateRequest): Promise<CertFile> {
  const { id, trustDomain, key, now } = request;
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialHex(),
    name: [{ O: ["Ironmesh"] }, { CN: [`Ironmesh Root CA ${trustDomain} ${id}`] }],
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + ROOT_TTL_MS),
    keys: { privateKey: key.privateKey, publicKey: key.publicKey },
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      new x509.SubjectKeyIdentifierExtension(hex(keyIdentifier(publicKeyBits(key.spki)))),
    ],
  });
  return certFile(new Uint8Array(root.rawData));
}

/**
 * An intermediate signed by `root`: a CA that may sign end-entity
 * certificates only (path length 0), valid {@link INTERMEDIATE_TTL_MS} but
 * never beyond its root.
 */
export async function createIntermediateCertificate(
  request: CaCertificateRequest,
  issuer: { root: CertFile; rootKey: SigningKey },
): Promise<CertFile> {
  const { id, trustDomain, key, now } = request;
  const { root, rootKey } = issuer;
  const rootSki = root.cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId ??
    hex(keyIdentifier(publicKeyBits(new Uint8Array(root.cert.publicKey.rawData))));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: [{ O: ["Ironmesh"] }, { CN: [`Ironmesh Intermediate CA ${trustDomain} ${id}`] }],
    issuer: root.cert.subjectName,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(Math.min(now + INTERMEDIATE_TTL_MS, root.cert.notAfter.getTime())),
    publicKey: key.publicKey,
    signingKey: rootKey.privateKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign |
          x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      new x509.SubjectKeyIdentifierExtension(hex(keyIdentifier(publicKeyBits(key.spki)))),
      new x509.AuthorityKeyIdentifierExtension(rootSki),
    ],
  });
  return certFile(new Uint8Array(cert.rawData));
}

/** The key identifier a CA certificate names, or the one its key would get. */
export function caKeyIdentifier(ca: CertFile, key: SigningKey): Bytes {
  const ski = ca.cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  return ski ? fromHex(ski) : keyIdentifier(publicKeyBits(key.spki));
}

/** Lower-case hex of `bytes`. */
export function hex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

function fromHex(text: string): Bytes {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** The subjectPublicKey bits of a P-256 SPKI: the 65-byte uncompressed point at its end. */
function publicKeyBits(spki: Uint8Array): Uint8Array {
  return spki.subarray(spki.length - 65);
}

function randomSerialHex(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  // Positive and minimally encoded: the top bit clear, the next one set.
  bytes[0] = (bytes[0]! & 0x3f) | 0x40;
  return hex(bytes);
}
