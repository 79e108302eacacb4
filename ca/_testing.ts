/**
 * Helpers for the CA's tests (not used by the product): temporary
 * directories, CSRs of any key type, running `openssl` for cross-checks, and
 * a real CA with its workload certificates for tests of other parts that
 * need mesh certificates (the agent's), so those are the product's own.
 */
import { join } from "node:path";
import { systemClock } from "../core/clock.ts";
import type { JoinTokenCreate } from "../core/model.ts";
import { CertificateAuthority } from "./authority.ts";
import { encodePem } from "./pem.ts";
import type { IssuedLeaf, LeafRequest } from "./pipeline.ts";
import { x509 } from "./x509.ts";

/** A fresh temporary directory, removed by the returned function. */
export async function tempDir(): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "ironmesh-ca-" });
  return { dir, remove: () => Deno.remove(dir, { recursive: true }) };
}

/** Key algorithms a test CSR can use. */
export type TestKeyType = "P-256" | "P-384" | "RSA";

/** Generates a key pair of `type` for WebCrypto. */
export async function testKeys(type: TestKeyType = "P-256"): Promise<CryptoKeyPair> {
  const alg = type === "RSA"
    ? {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-256",
    }
    : { name: "ECDSA", namedCurve: type };
  return await crypto.subtle.generateKey(alg, true, ["sign", "verify"]) as CryptoKeyPair;
}

/** Options of {@link makeCsr}. */
export interface CsrOptions {
  keys?: CryptoKeyPair;
  keyType?: TestKeyType;
  /** Subject, e.g. `CN=node-1`. Default: empty. */
  subject?: string;
  uris?: string[];
  dnsNames?: string[];
  ips?: string[];
  ca?: boolean;
}

/** A PEM CSR built with `@peculiar/x509`, an implementation independent of ours. */
export async function makeCsr(options: CsrOptions = {}): Promise<string> {
  const type = options.keyType ?? "P-256";
  const keys = options.keys ?? await testKeys(type);
  const names: x509.JsonGeneralName[] = [
    ...(options.uris ?? []).map((value) => ({ type: "url" as const, value })),
    ...(options.dnsNames ?? []).map((value) => ({ type: "dns" as const, value })),
    ...(options.ips ?? []).map((value) => ({ type: "ip" as const, value })),
  ];
  const extensions: x509.Extension[] = [];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names));
  if (options.ca) extensions.push(new x509.BasicConstraintsExtension(true, undefined, true));
  const signingAlgorithm = type === "RSA"
    ? { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }
    : { name: "ECDSA", hash: type === "P-384" ? "SHA-384" : "SHA-256" };
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    ...(options.subject === undefined ? {} : { name: options.subject }),
    keys,
    signingAlgorithm,
    extensions,
  });
  return csr.toString("pem") + "\n";
}

/** The result of one `openssl` run. */
export interface OpensslResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `openssl args…` in `cwd`. */
export async function openssl(args: string[], cwd?: string): Promise<OpensslResult> {
  const out = await new Deno.Command("openssl", {
    args,
    ...(cwd === undefined ? {} : { cwd }),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

/** Runs `openssl args…` and throws with its stderr when it fails. */
export async function opensslOk(args: string[], cwd?: string): Promise<string> {
  const r = await openssl(args, cwd);
  if (r.code !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

/**
 * `openssl verify` of `leafPem` against `rootPem`, with `chainPem` as
 * untrusted intermediates; `at` (ms) checks validity at that time.
 */
export async function opensslVerify(
  dir: string,
  pems: { root: string; chain: string; leaf: string },
  at?: number,
): Promise<OpensslResult> {
  await Deno.writeTextFile(join(dir, "v-root.pem"), pems.root);
  await Deno.writeTextFile(join(dir, "v-chain.pem"), pems.chain);
  await Deno.writeTextFile(join(dir, "v-leaf.pem"), pems.leaf);
  const args = ["verify", "-CAfile", "v-root.pem"];
  if (pems.chain.trim() !== "") args.push("-untrusted", "v-chain.pem");
  if (at !== undefined) args.push("-attime", String(Math.floor(at / 1000)));
  args.push("v-leaf.pem");
  return await openssl(args, dir);
}

/** A join token request for `default/web`, one use, one hour, with `extra` on top. */
export function joinRequest(extra: Partial<JoinTokenCreate> = {}): JoinTokenCreate {
  return {
    kind: "join",
    namespace: "default",
    serviceAccount: "web",
    uses: 1,
    description: "",
    ttl: 3_600_000,
    ...extra,
  };
}

/** A real CA (`authority.ts`) in a fresh temporary directory; `close()` closes and removes it. */
export interface TestAuthority {
  authority: CertificateAuthority;
  close(): Promise<void>;
}

/**
 * Opens a new CA for `trustDomain` on the system clock, so that TLS peers
 * accept what it issues now.
 */
export async function openTestAuthority(trustDomain: string): Promise<TestAuthority> {
  const { dir, remove } = await tempDir();
  const authority = await CertificateAuthority.open({ dir, trustDomain, clock: systemClock });
  return {
    authority,
    async close() {
      authority.close();
      await remove();
    },
  };
}

/** A workload certificate as enrolment issues it, with its key. */
export interface TestLeaf {
  /** PKCS#8 `PRIVATE KEY` PEM. */
  keyPem: string;
  leaf: IssuedLeaf;
}

/** Issues a workload certificate for a new P-256 key through the CA's signing pipeline. */
export async function issueTestLeaf(
  authority: Pick<CertificateAuthority, "issue">,
  request: Omit<LeafRequest, "csrPem">,
): Promise<TestLeaf> {
  const keys = await testKeys();
  const csrPem = await makeCsr({ keys, subject: `CN=${request.node}` });
  const leaf = await authority.issue({ ...request, csrPem });
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  return { keyPem: encodePem("PRIVATE KEY", pkcs8), leaf };
}
