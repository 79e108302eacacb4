/**
 * PEM (RFC 7468), for the CA and the agent alike. Encoding is
 * `@peculiar/x509`'s `PemConverter`: on a 600-byte certificate it took 24 µs
 * where the hand-written encoder it replaced took 65 (two runs on a loaded
 * machine, ratio 2.7 and 3.5). Decoding stays hand-written, because the
 * library's decoder skips a broken block without a word: an END line that
 * names another label, a body that is not base64 and a BEGIN without END all
 * decode as "no block" (checked against `@peculiar/x509` 2.2.0;
 * `pem_test.ts` pins what ours says instead), so a truncated CSR or bundle
 * would be reported as missing rather than broken. The pipeline also needs
 * to count and label blocks before any parser sees them (a CSR field must
 * hold exactly one `CERTIFICATE REQUEST`).
 */
import type { Bytes } from "./der.ts";
import { x509 } from "./x509.ts";

/** One `-----BEGIN X----- … -----END X-----` block, decoded. */
export interface PemBlock {
  /** The label, e.g. `CERTIFICATE`. */
  label: string;
  der: Bytes;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Thrown by {@link decodePem}; callers turn it into their own domain error. */
export class PemError extends Error {}

/**
 * Every PEM block in `text`, in order. Text between blocks is ignored, as RFC
 * 7468 allows (OpenSSL's `-text` output puts a dump before the block).
 * Throws {@link PemError} for a block whose base64 or END line is broken.
 */
export function decodePem(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  for (const m of text.matchAll(BLOCK)) {
    const label = m[1]!;
    if (m[3] !== label) {
      throw new PemError(`PEM block "${label}" ends with "END ${m[3]}"`);
    }
    const body = m[2]!.replace(/\s+/g, "");
    if (!BASE64.test(body) || body.length % 4 !== 0 || body.length === 0) {
      throw new PemError(`PEM block "${label}" is not valid base64`);
    }
    blocks.push({ label, der: fromBase64(body) });
  }
  if (blocks.length === 0 && text.includes("-----BEGIN")) {
    throw new PemError("PEM block has no matching END line");
  }
  return blocks;
}

/** Encodes `der` as one PEM block with 64-character lines and a final newline. */
export function encodePem(label: string, der: Uint8Array<ArrayBuffer>): string {
  return x509.PemConverter.encode(der, label) + "\n";
}

/** The DER of every `CERTIFICATE` block in `text`, in order; other blocks are an error. */
export function decodeCertificates(text: string): Bytes[] {
  return decodePem(text).map((b) => {
    if (b.label !== "CERTIFICATE") {
      throw new PemError(`Expected "CERTIFICATE" blocks only, found "${b.label}"`);
    }
    return b.der;
  });
}

function fromBase64(b64: string): Bytes {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
