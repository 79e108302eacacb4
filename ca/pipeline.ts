/**
 * How a certificate is signed: one fixed pipeline, in the order smallstep
 * and SPIRE use, so no caller can skip a step —
 *
 *   1. check CSR       well-formed PKCS#10, ECDSA P-256, self-signature verifies (`csr.ts`)
 *   2. validate        the CSR asks for nothing, or for exactly the identity being issued
 *   3. build template  serial, subject, one SPIFFE URI SAN, fixed extensions (`leaf.ts`)
 *   4. enforce limits  lifetime capped by the maximum and by the issuer's own expiry
 *   5. sign            with the active intermediate
 *
 * Who may get which identity is decided before this (join tokens, mTLS
 * renewal); recording the result is done after it, by the caller. The
 * pipeline takes the time as an argument and does no I/O.
 *
 * Speed: on a 2-core machine one ECDSA P-256 sign costs ~0.45 ms and one
 * verify ~0.5 ms under Deno; `@peculiar/x509` adds ~0.25 ms to parse a CSR
 * and ~1.3 ms to build a certificate, which is why steps 1 and 3 write and
 * read DER directly and the library is kept for CA certificates and tests.
 */
import { isIPv4, isIPv6 } from "node:net";
import { ForbiddenError, InvalidError, UnavailableError } from "../core/errors.ts";
import { isNodeName, isSubdomainName, NODE_NAME_RULE } from "../core/names.ts";
import { DEFAULT_LEAF_TTL_MS } from "../core/server_config.ts";
import { spiffeId } from "../core/spiffe_id.ts";
import { checkCsr, type CheckedCsr } from "./csr.ts";
import type { Bytes } from "./der.ts";
import { P256 } from "./keys.ts";
import {
  EKU,
  encodeLeafTbs,
  type GeneralName,
  type IssuerParts,
  type LeafTemplate,
  signCertificate,
} from "./leaf.ts";
import { encodePem } from "./pem.ts";

/** How far notBefore is set in the past, so a peer whose clock is a little behind accepts it. */
export const CLOCK_SKEW_MS = 60 * 1000;

/** The signing CA as the pipeline needs it: a key and what it writes into each leaf. */
export interface Signer {
  /** The signing CA's private key (ECDSA P-256). */
  key: CryptoKey;
  /** The signing CA's subject and key identifier. */
  issuer: IssuerParts;
  /** The signing CA's validity, in ms since the epoch; leaves never outlive it. */
  notBefore: number;
  notAfter: number;
  /** PEM of the CA certificates that follow a leaf: the signing CA and any CA above it, not the root. */
  chainPem: string;
  /** SHA-256 fingerprint (lower-case hex) of the root the chain ends in. */
  rootFingerprint: string;
  /** Trust domain of every SPIFFE ID this signer issues. */
  trustDomain: string;
}

/** A request for a workload certificate. */
export interface LeafRequest {
  /** PKCS#10 CSR, PEM. */
  csrPem: string;
  /** The node (host) name; becomes the subject CN. */
  node: string;
  namespace: string;
  serviceAccount: string;
  /** Requested lifetime. Default: {@link DEFAULT_LEAF_TTL_MS}; capped by the signer's maximum. */
  ttlMs?: number;
}

/** A workload certificate fresh from the pipeline, not yet recorded. */
export interface IssuedLeaf {
  /** Serial number, lower-case hex without leading zeros. */
  serial: string;
  /** The SPIFFE ID in the URI SAN. */
  identity: string;
  node: string;
  /** ISO 8601. */
  notBefore: string;
  /** ISO 8601. */
  notAfter: string;
  /** The leaf alone, PEM. */
  certificatePem: string;
  /** Leaf then the CA certificates up to (not including) the root, PEM. */
  chainPem: string;
  /** SHA-256 fingerprint of the root the chain ends in. */
  root: string;
}

/** The time and the cap the limits step enforces. */
export interface Limits {
  /** Now, in ms since the epoch (from the injected clock). */
  now: number;
  /** Longest lifetime granted. */
  maxTtlMs: number;
}

// SPIFFE path segments: letters, digits, '.', '-', '_' (SPIFFE ID spec §2.2).
const SEGMENT = /^[A-Za-z0-9._-]+$/;

function checkFields(request: LeafRequest): void {
  const problems = [];
  if (!isNodeName(request.node)) {
    problems.push({
      pointer: "/node",
      message: `Node name "${request.node}" is not ${NODE_NAME_RULE}`,
    });
  }
  for (
    const [field, value] of [["namespace", request.namespace], [
      "serviceAccount",
      request.serviceAccount,
    ]]
  ) {
    if (!SEGMENT.test(value!) || value === "." || value === "..") {
      problems.push({
        pointer: `/${field}`,
        message: `${
          field === "namespace" ? "Namespace" : "Service account"
        } "${value}" is not a valid SPIFFE path segment`,
      });
    }
  }
  if (problems.length > 0) throw new InvalidError(problems[0]!.message, problems);
}

/**
 * Step 2: the CSR may ask for nothing, or only for what is being issued: at
 * most one URI SAN equal to `identity`, no DNS/IP/email SANs, a CN equal to
 * the node name, no CA. Other subject attributes are ignored, as the issued
 * subject is always `CN=<node>`. Throws `ForbiddenError` naming what was
 * asked for and what is allowed.
 */
export function validateRequest(csr: CheckedCsr, node: string, identity: string): void {
  const uris = csr.names.filter((n) => n.type === "uri");
  if (uris.length > 1) {
    throw new ForbiddenError(
      `CSR asks for ${uris.length} URI names: a SPIFFE certificate holds exactly one, "${identity}"`,
    );
  }
  const uri = uris[0]?.value;
  if (uri !== undefined && uri !== identity) {
    const domain = /^spiffe:\/\/([^/]*)/i.exec(uri)?.[1];
    const where = domain !== undefined && domain !== new URL(identity).host
      ? ` in trust domain "${domain}"`
      : "";
    throw new ForbiddenError(
      `CSR asks for identity "${uri}"${where}: only "${identity}" may be issued here`,
    );
  }
  const other = csr.names.find((n) => n.type !== "uri");
  if (other) {
    const kind = { dns: "DNS name", ip: "IP address", email: "email address", other: "name" }[
      other.type as "dns" | "ip" | "email" | "other"
    ];
    throw new ForbiddenError(
      `CSR asks for ${kind} "${other.value}": only "${identity}" may be issued here`,
    );
  }
  if (csr.commonNames.length > 1) {
    throw new ForbiddenError(
      `CSR asks for ${csr.commonNames.length} common names: only "${node}" may be issued here`,
    );
  }
  const cn = csr.commonNames[0];
  if (cn !== undefined && cn !== node) {
    throw new ForbiddenError(`CSR asks for common name "${cn}": only "${node}" may be issued here`);
  }
  if (csr.wantsCa) {
    throw new ForbiddenError(
      `CSR asks for a CA certificate: only a workload certificate for "${identity}" may be issued`,
    );
  }
}

/** 128 random bits as a positive serial (RFC 5280 allows up to 20 octets). */
export function randomSerial(): Bytes {
  const serial = new Uint8Array(16);
  do crypto.getRandomValues(serial); while (serial.every((b) => b === 0));
  return serial;
}

/** A serial as lower-case hex without leading zeros. */
export function serialHex(serial: Uint8Array): string {
  let hex = "";
  for (const b of serial) hex += b.toString(16).padStart(2, "0");
  return hex.replace(/^0+(?=.)/, "");
}

/**
 * Step 4: the validity window. notBefore is now minus {@link CLOCK_SKEW_MS};
 * notAfter is now plus the requested lifetime, capped by `limits.maxTtlMs`
 * and by the signer's own notAfter. Whole seconds, as certificates encode.
 */
export function enforceLimits(
  ttlMs: number | undefined,
  signer: Pick<Signer, "notBefore" | "notAfter">,
  limits: Limits,
): { notBefore: number; notAfter: number } {
  const ttl = ttlMs ?? DEFAULT_LEAF_TTL_MS;
  if (!Number.isFinite(ttl) || ttl <= 0) {
    const message = `Lifetime ${ttl} ms is not valid: it must be a positive number of milliseconds`;
    throw new InvalidError(message, [{ pointer: "/ttlMs", message }]);
  }
  if (signer.notAfter <= limits.now + CLOCK_SKEW_MS) {
    throw new UnavailableError(
      `The signing CA expired at "${new Date(signer.notAfter).toISOString()}": it must be renewed`,
    );
  }
  const second = (ms: number) => Math.floor(ms / 1000) * 1000;
  const notBefore = second(Math.max(limits.now - CLOCK_SKEW_MS, signer.notBefore));
  const notAfter = second(
    Math.min(limits.now + Math.min(ttl, limits.maxTtlMs), signer.notAfter),
  );
  return { notBefore, notAfter };
}

/** Runs the whole pipeline for one workload certificate. */
export async function issueLeaf(
  signer: Signer,
  request: LeafRequest,
  limits: Limits,
): Promise<IssuedLeaf> {
  checkFields(request);
  const identity = spiffeId(signer.trustDomain, request.namespace, request.serviceAccount);
  const csr = await checkCsr(request.csrPem);
  validateRequest(csr, request.node, identity);
  const template: LeafTemplate = {
    serial: randomSerial(),
    commonName: request.node,
    spki: csr.spki,
    publicKey: csr.publicKey,
    names: [{ type: "uri", value: identity }],
    extendedKeyUsages: [EKU.serverAuth, EKU.clientAuth],
    ...enforceLimits(request.ttlMs, signer, limits),
  };
  const der = await signCertificate(encodeLeafTbs(template, signer.issuer), signer.key);
  const certificatePem = encodePem("CERTIFICATE", der);
  return {
    serial: serialHex(template.serial),
    identity,
    node: request.node,
    notBefore: new Date(template.notBefore).toISOString(),
    notAfter: new Date(template.notAfter).toISOString(),
    certificatePem,
    chainPem: certificatePem + signer.chainPem,
    root: signer.rootFingerprint,
  };
}

/** A request for a TLS server certificate whose key is made here (the control plane's own). */
export interface ServerCertificateRequest {
  /** DNS names for the SAN; the first is also the CN. */
  dnsNames?: string[];
  /** IP addresses for the SAN. */
  ipAddresses?: string[];
  /** Requested lifetime. Default: {@link DEFAULT_LEAF_TTL_MS}; capped like a leaf's. */
  ttlMs?: number;
}

/** A server certificate with its new key; every field is ready for node:tls options. */
export interface IssuedServerCertificate {
  /** PKCS#8 `PRIVATE KEY` PEM: node:tls `key`. */
  keyPem: string;
  /** The leaf alone, PEM. */
  certificatePem: string;
  /** Leaf then CA certificates up to (not including) the root: node:tls `cert`. */
  chainPem: string;
  serial: string;
  /** ISO 8601. */
  notAfter: string;
}

/** IPv4 or IPv6 text as its 4 or 16 bytes; `undefined` when it is neither. */
export function parseIp(text: string): Bytes | undefined {
  if (isIPv4(text)) return new Uint8Array(text.split(".").map(Number));
  if (!isIPv6(text)) return undefined;
  let head = text;
  let v4: number[] = [];
  const dotted = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    head = dotted[1]!.endsWith("::") ? dotted[1]! : dotted[1]!.slice(0, -1);
    v4 = dotted[2]!.split(".").map(Number);
  }
  const [left = "", right] = head.split("::");
  const words = (s: string) => s === "" ? [] : s.split(":").map((w) => parseInt(w, 16));
  const l = words(left);
  const r = right === undefined ? [] : words(right);
  const fill = 8 - v4.length / 2 - l.length - r.length;
  const all = [...l, ...new Array(right === undefined ? 0 : fill).fill(0), ...r];
  const out = new Uint8Array(16);
  all.forEach((w, i) => {
    out[i * 2] = w >> 8;
    out[i * 2 + 1] = w & 0xff;
  });
  out.set(v4, 12);
  return out;
}

/**
 * Issues a TLS server certificate (serverAuth) for the given DNS names and
 * IP addresses with a key generated here, through steps 3–5 of the pipeline.
 */
export async function issueServerCertificate(
  signer: Signer,
  request: ServerCertificateRequest,
  limits: Limits,
): Promise<IssuedServerCertificate> {
  const dnsNames = request.dnsNames ?? [];
  const ipAddresses = request.ipAddresses ?? [];
  const problems = [];
  const names: GeneralName[] = [];
  dnsNames.forEach((name, i) => {
    if (isSubdomainName(name)) names.push({ type: "dns", value: name });
    else problems.push({ pointer: `/dnsNames/${i}`, message: `DNS name "${name}" is not valid` });
  });
  ipAddresses.forEach((ip, i) => {
    const bytes = parseIp(ip);
    if (bytes) names.push({ type: "ip", value: bytes });
    else {problems.push({
        pointer: `/ipAddresses/${i}`,
        message: `IP address "${ip}" is not valid`,
      });}
  });
  if (names.length === 0 && problems.length === 0) {
    problems.push({
      pointer: "/dnsNames",
      message: "At least one DNS name or IP address is needed",
    });
  }
  if (problems.length > 0) throw new InvalidError(problems[0]!.message, problems);

  const pair = await crypto.subtle.generateKey(P256, true, ["sign", "verify"]);
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", pair.publicKey));
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const template: LeafTemplate = {
    serial: randomSerial(),
    commonName: dnsNames[0] ?? ipAddresses[0]!,
    spki,
    // A P-256 SPKI is a fixed 26-byte header, then the BIT STRING's 0 pad byte, then the point.
    publicKey: spki.subarray(spki.length - 65),
    names,
    extendedKeyUsages: [EKU.serverAuth],
    ...enforceLimits(request.ttlMs, signer, limits),
  };
  const der = await signCertificate(encodeLeafTbs(template, signer.issuer), signer.key);
  const certificatePem = encodePem("CERTIFICATE", der);
  return {
    keyPem: encodePem("PRIVATE KEY", pkcs8),
    certificatePem,
    chainPem: certificatePem + signer.chainPem,
    serial: serialHex(template.serial),
    notAfter: new Date(template.notAfter).toISOString(),
  };
}
