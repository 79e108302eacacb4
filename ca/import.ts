/**
 * Checks operator-supplied CA material (Istio's `cacerts`: the signing CA
 * certificate, its key, and the chain up to the root) before the authority
 * adopts it. Every problem names the file it is in, so an operator can fix
 * the right one; nothing is half-imported.
 */
import type { KeyObject } from "node:crypto";
import { createPublicKey } from "node:crypto";
import type { Clock } from "../core/clock.ts";
import { type FieldProblem, InvalidError } from "../core/errors.ts";
import type { Bytes } from "./der.ts";
import { parsePrivateKeyPem } from "./keys.ts";
import { decodeCertificates, PemError } from "./pem.ts";
import { x509 } from "./x509.ts";

/** The files of an imported CA. */
export interface ImportFiles {
  /** PEM of the CA certificate that will sign leaves. */
  certFile: string;
  /** PEM of its private key (ECDSA P-256; may be encrypted with the authority's passphrase). */
  keyFile: string;
  /** PEM of the chain from the signing certificate up to and including the root (last). */
  chainFile: string;
}

/** Material that passed every check. */
export interface ImportedCa {
  signing: x509.X509Certificate;
  key: KeyObject;
  /** CA certificates strictly between the signing certificate and the root, bottom up. */
  between: x509.X509Certificate[];
  root: x509.X509Certificate;
}

class ImportProblems {
  readonly list: FieldProblem[] = [];
  add(field: keyof ImportFiles, file: string, message: string): void {
    this.list.push({ pointer: `/import/${field}`, message: `"${file}": ${message}` });
  }
  throwIfAny(): void {
    if (this.list.length === 0) return;
    throw new InvalidError(`Cannot import the CA: ${this.list[0]!.message}`, this.list);
  }
}

async function readFile(
  problems: ImportProblems,
  field: keyof ImportFiles,
  path: string,
): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    problems.add(field, path, `cannot be read: ${(e as Error).message}`);
    return undefined;
  }
}

function parseCertificates(
  problems: ImportProblems,
  field: keyof ImportFiles,
  path: string,
  text: string,
): x509.X509Certificate[] {
  try {
    const ders = decodeCertificates(text);
    if (ders.length === 0) problems.add(field, path, `holds no "CERTIFICATE" PEM block`);
    return ders.map((der) => new x509.X509Certificate(der));
  } catch (e) {
    const why = e instanceof PemError ? e.message : "a certificate in it cannot be parsed";
    problems.add(field, path, why);
    return [];
  }
}

function sameDer(a: x509.X509Certificate, b: x509.X509Certificate): boolean {
  const x = new Uint8Array(a.rawData);
  const y = new Uint8Array(b.rawData);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

function isCa(cert: x509.X509Certificate): boolean {
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  const ku = cert.getExtension(x509.KeyUsagesExtension);
  return !!bc?.ca && !!ku && (ku.usages & x509.KeyUsageFlags.keyCertSign) !== 0;
}

/** The SubjectPublicKeyInfo DER of a private key's public half. */
function spkiOfKey(key: KeyObject): Bytes {
  return new Uint8Array(createPublicKey(key).export({ type: "spki", format: "der" }));
}

/**
 * Reads and checks an imported CA: each PEM parses; the key is ECDSA P-256
 * and belongs to the signing certificate; the signing certificate is a CA
 * allowed to sign certificates; every certificate of the chain is signed by
 * the next and the last is a self-signed root; none is expired or not yet
 * valid at `clock.now()`. Throws one `InvalidError` listing every problem.
 */
export async function readImport(
  files: ImportFiles,
  options: { clock: Clock; passphrase?: string | undefined },
): Promise<ImportedCa> {
  const problems = new ImportProblems();
  const [certText, keyText, chainText] = await Promise.all([
    readFile(problems, "certFile", files.certFile),
    readFile(problems, "keyFile", files.keyFile),
    readFile(problems, "chainFile", files.chainFile),
  ]);
  problems.throwIfAny();

  const signingList = parseCertificates(problems, "certFile", files.certFile, certText!);
  if (signingList.length > 1) {
    problems.add(
      "certFile",
      files.certFile,
      `holds ${signingList.length} certificates, expected 1`,
    );
  }
  let chain = parseCertificates(problems, "chainFile", files.chainFile, chainText!);
  let key: KeyObject | undefined;
  try {
    key = parsePrivateKeyPem(keyText!, { source: files.keyFile, passphrase: options.passphrase });
  } catch (e) {
    if (!(e instanceof InvalidError)) throw e;
    problems.add("keyFile", files.keyFile, e.problems[0]?.message ?? e.message);
  }
  problems.throwIfAny();
  const signing = signingList[0]!;

  const spki = new Uint8Array(signing.publicKey.rawData);
  const keySpki = spkiOfKey(key!);
  if (spki.length !== keySpki.length || !spki.every((b, i) => b === keySpki[i])) {
    problems.add("keyFile", files.keyFile, `does not match the certificate in "${files.certFile}"`);
  }
  if (!isCa(signing)) {
    problems.add(
      "certFile",
      files.certFile,
      `"${signing.subject}" is not a CA certificate with keyCertSign: it cannot sign certificates`,
    );
  }

  // The chain may or may not repeat the signing certificate first.
  if (chain.length > 0 && sameDer(chain[0]!, signing)) chain = chain.slice(1);
  const path = [signing, ...chain];
  const root = path.at(-1)!;
  for (let i = 0; i + 1 < path.length; i++) {
    const child = path[i]!;
    const parent = path[i + 1]!;
    const signed = child.issuer === parent.subject &&
      await child.verify({ publicKey: parent.publicKey, signatureOnly: true }).catch(() => false);
    if (!signed) {
      problems.add(
        "chainFile",
        files.chainFile,
        `the chain is broken: "${child.subject}" is not signed by "${parent.subject}"`,
      );
    } else if (!isCa(parent)) {
      problems.add("chainFile", files.chainFile, `"${parent.subject}" is not a CA certificate`);
    }
  }
  const selfSigned = root.issuer === root.subject &&
    await root.verify({ signatureOnly: true }).catch(() => false);
  if (!selfSigned) {
    problems.add(
      "chainFile",
      files.chainFile,
      `the last certificate, "${root.subject}", is not a self-signed root`,
    );
  }

  const now = options.clock.now();
  path.forEach((cert, i) => {
    const [field, file] = i === 0
      ? ["certFile", files.certFile] as const
      : ["chainFile", files.chainFile] as const;
    if (cert.notAfter.getTime() <= now) {
      problems.add(field, file, `"${cert.subject}" expired at ${cert.notAfter.toISOString()}`);
    } else if (cert.notBefore.getTime() > now) {
      problems.add(
        field,
        file,
        `"${cert.subject}" is not valid before ${cert.notBefore.toISOString()}`,
      );
    }
  });
  problems.throwIfAny();
  return { signing, key: key!, between: chain.slice(0, -1), root };
}
