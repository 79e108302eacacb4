/**
 * The agent's own cryptography: its key pair, its certificate signing
 * request, and reading the certificates the server sends. The private key is
 * made here, on the host, and only its PEM goes to disk and to the TLS
 * client; what leaves the host is the CSR, which holds the public key only.
 */
import { decodePem, encodePem } from "../ca/pem.ts";
import { x509 } from "../ca/x509.ts";
import { InvalidError } from "../core/errors.ts";

/** ECDSA P-256 with SHA-256: what the server's CA uses, and cheap for TLS handshakes. */
const KEY_ALGORITHM = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGNING_ALGORITHM = { name: "ECDSA", hash: "SHA-256" } as const;

/**
 * A fresh key pair. Extractable, because the agent must save the private key
 * to survive a restart and hand it to the TLS client as PEM.
 */
export async function generateKeyPair(): Promise<CryptoKeyPair> {
  return await crypto.subtle.generateKey(KEY_ALGORITHM, true, ["sign", "verify"]);
}

/** The private key as PKCS#8 PEM (`BEGIN PRIVATE KEY`), the form TLS libraries read. */
export async function privateKeyPem(key: CryptoKey): Promise<string> {
  return encodePem("PRIVATE KEY", new Uint8Array(await crypto.subtle.exportKey("pkcs8", key)));
}

/**
 * A PKCS#10 request, PEM, for `CN=<node>` with `identity` (a SPIFFE ID) as
 * its only URI SAN: the server names the node by the CN and the workload by
 * the URI.
 */
export async function createCsr(
  keys: CryptoKeyPair,
  node: string,
  identity: string,
): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [node] }],
    keys,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.SubjectAlternativeNameExtension([{ type: "url", value: identity }], false),
    ],
  });
  return csr.toString("pem") + "\n";
}

/** Every certificate in a PEM text, in order; throws an {@link InvalidError} naming `what`. */
export function parseCertificates(pem: string, what: string): x509.X509Certificate[] {
  let certs: x509.X509Certificate[];
  try {
    certs = decodePem(pem)
      .filter((block) => block.label === "CERTIFICATE")
      .map((block) => new x509.X509Certificate(block.der));
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new InvalidError(`Invalid ${what}: ${why}`);
  }
  if (certs.length === 0) throw new InvalidError(`Invalid ${what}: it holds no PEM certificate`);
  return certs;
}

/** `sha256:` and the lower-case hex SHA-256 of the certificate's DER: the join token's pin format. */
export async function fingerprint(cert: x509.X509Certificate): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", cert.rawData));
  return "sha256:" + Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** What the agent needs to know about its leaf certificate. */
export interface LeafInfo {
  /** Serial number: lower-case hex without leading zeros, as the server reports serials. */
  serial: string;
  /** Start of validity, ms since the epoch. */
  notBefore: number;
  /** End of validity, ms since the epoch. */
  notAfter: number;
  /** The subject's common name; the server reads the node name from it. */
  commonName: string | undefined;
  /** URI SANs; the server reads the SPIFFE ID from them. */
  uris: string[];
}

/** Reads the first certificate of a chain (the leaf). */
export function describeLeaf(cert: x509.X509Certificate): LeafInfo {
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  return {
    serial: cert.serialNumber.toLowerCase().replace(/^0+(?=.)/, ""),
    notBefore: cert.notBefore.getTime(),
    notAfter: cert.notAfter.getTime(),
    commonName: cert.subjectName.getField("CN")[0],
    uris: san?.names.items.filter((n) => n.type === "url").map((n) => n.value) ?? [],
  };
}

/**
 * Whether the private key in `keyPem` belongs to `cert`, by comparing the
 * public point: a mismatched pair fails every TLS handshake, so the agent
 * checks before it uses files it did not just write.
 */
export async function keyMatchesCertificate(
  keyPem: string,
  cert: x509.X509Certificate,
): Promise<boolean> {
  let key: CryptoKey;
  try {
    const [block] = decodePem(keyPem);
    if (!block) return false;
    key = await crypto.subtle.importKey("pkcs8", block.der, KEY_ALGORITHM, true, ["sign"]);
  } catch {
    return false;
  }
  return await samePublicKey(key, cert);
}

/**
 * Whether `key` (either half of a pair) and the certificate's public key have
 * the same public point: the check that a certificate was issued for our key.
 */
export async function samePublicKey(key: CryptoKey, cert: x509.X509Certificate): Promise<boolean> {
  try {
    const fromKey = await crypto.subtle.exportKey("jwk", key);
    const fromCert = await crypto.subtle.exportKey("jwk", await cert.publicKey.export());
    return fromKey.x === fromCert.x && fromKey.y === fromCert.y;
  } catch {
    return false;
  }
}
