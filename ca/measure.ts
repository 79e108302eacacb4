/**
 * Issuance throughput, for the benchmark script: how many workload
 * certificates per second the full signing pipeline produces, next to how
 * many raw ECDSA P-256 signatures WebCrypto makes per second on the same
 * machine. Issuance needs one verify (the CSR) and one sign, so at equal
 * concurrency it cannot beat about half the raw sign rate.
 */
import type { CertificateAuthority } from "./authority.ts";
import { P256 } from "./keys.ts";
import { encodePem } from "./pem.ts";
import { x509 } from "./x509.ts";

/** Options of {@link measureIssuance}. */
export interface MeasureOptions {
  /** Certificates issued in the timed run. Default: 2000. */
  count?: number;
  /** Requests in flight at once. Default: 16. */
  concurrency?: number;
  /** Distinct CSRs (and keys) cycled through; made before timing starts. Default: 8. */
  csrs?: number;
  /** Untimed requests first, so the JIT and workers are warm. Default: 100. */
  warmup?: number;
}

/** One throughput measurement. */
export interface Rate {
  count: number;
  seconds: number;
  perSecond: number;
}

async function timed(
  count: number,
  concurrency: number,
  op: (i: number) => Promise<unknown>,
): Promise<Rate> {
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: Math.max(1, concurrency) }, async () => {
      while (next < count) await op(next++);
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  return { count, seconds, perSecond: count / seconds };
}

/**
 * Issues `count` workload certificates through `authority.issue` (the whole
 * pipeline: CSR check and signature verify, validation, template, limits,
 * sign) and returns the rate. CSRs are made up front with `@peculiar/x509`.
 */
export async function measureIssuance(
  authority: CertificateAuthority,
  options: MeasureOptions = {},
): Promise<Rate> {
  const count = options.count ?? 2000;
  const td = authority.trustDomain;
  const csrs: string[] = [];
  for (let i = 0; i < (options.csrs ?? 8); i++) {
    const keys = await crypto.subtle.generateKey(P256, true, ["sign", "verify"]);
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: `CN=bench-${i}`,
      keys,
      signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
      extensions: [
        new x509.SubjectAlternativeNameExtension([
          { type: "url", value: `spiffe://${td}/ns/bench/sa/sa-${i}` },
        ]),
      ],
    });
    csrs.push(encodePem("CERTIFICATE REQUEST", new Uint8Array(csr.rawData)));
  }
  const issue = (i: number) => {
    const k = i % csrs.length;
    return authority.issue({
      csrPem: csrs[k]!,
      node: `bench-${k}`,
      namespace: "bench",
      serviceAccount: `sa-${k}`,
      ttlMs: 3_600_000,
    });
  };
  const concurrency = options.concurrency ?? 16;
  await timed(options.warmup ?? 100, concurrency, issue);
  return await timed(count, concurrency, issue);
}

/**
 * Raw `crypto.subtle.sign` ECDSA P-256/SHA-256 rate over a certificate-sized
 * message. Deno runs WebCrypto signing on a thread pool, so with
 * `concurrency` above 1 the rate grows with the cores; compare issuance and
 * raw signing at the same concurrency.
 */
export async function measureRawSign(
  options: { count?: number; concurrency?: number } = {},
): Promise<Rate> {
  const count = options.count ?? 2000;
  const concurrency = options.concurrency ?? 1;
  const { privateKey } = await crypto.subtle.generateKey(P256, false, ["sign", "verify"]);
  const data = crypto.getRandomValues(new Uint8Array(420));
  const sign = () => crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, privateKey, data);
  await timed(100, concurrency, sign);
  return await timed(count, concurrency, sign);
}
