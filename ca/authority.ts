/**
 * The certificate authority: CA generations on disk, the trust bundle, the
 * rotation primitives, and the entry points of the signing pipeline.
 *
 * A generation is a root and the intermediate that signs for it, kept in
 * `<dir>/gen-<N>/` (`root.crt`, `root.key`, `intermediate.crt`,
 * `intermediate.key`; a renewed intermediate is `intermediate-<k>.*`).
 * `<dir>/state.json` lists the generations with their stage and which
 * intermediate file is current; it is written last, atomically, so it is the
 * commit point of every change and a crash never leaves a half-made CA in use.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { z } from "zod";
import type { Clock } from "../core/clock.ts";
import { ConflictError, InvalidError, UnavailableError } from "../core/errors.ts";
import type { Bytes } from "./der.ts";
import { ensurePrivateDir, readTextIfExists, writeFileAtomic } from "./files.ts";
import { type ImportFiles, readImport } from "./import.ts";
import { FileKeyBackend, type KeyBackend, type SigningKey } from "./keys.ts";
import { keyIdentifier, subjectNameOf } from "./leaf.ts";
import { decodeCertificates } from "./pem.ts";
import {
  DEFAULT_MAX_LEAF_TTL_MS,
  type IssuedLeaf,
  type IssuedServerCertificate,
  issueLeaf,
  issueServerCertificate,
  type LeafRequest,
  type ServerCertificateRequest,
  type Signer,
} from "./pipeline.ts";
import {
  activateGeneration,
  activeGeneration,
  nextGenerationId,
  retireGeneration,
  type Stage,
} from "./rotation.ts";
import { x509 } from "./x509.ts";

const DAY_MS = 24 * 60 * 60 * 1000;
/** Lifetime of a root: 10 years. */
export const ROOT_TTL_MS = 3650 * DAY_MS;
/** Lifetime of an intermediate: 1 year (never beyond its root). */
export const INTERMEDIATE_TTL_MS = 365 * DAY_MS;
/** An intermediate with less than this left is replaced: 30 days. */
export const DEFAULT_RENEW_BEFORE_MS = 30 * DAY_MS;

const ALGORITHM = { name: "ECDSA", hash: "SHA-256" } as const;

/** Options of {@link CertificateAuthority.open}. */
export interface AuthorityOptions {
  /** Directory of the CA files; created with mode 0700. */
  dir: string;
  /** SPIFFE trust domain, e.g. `ironmesh.local`; fixed once the CA exists. */
  trustDomain: string;
  clock: Clock;
  /** Encrypts private keys at rest (and decrypts an encrypted imported key). Default: none. */
  passphrase?: string;
  /** Adopt an operator's CA instead of creating one; only on first open. Default: create. */
  import?: ImportFiles;
  /** Where private keys live. Default: `FileKeyBackend(dir, { passphrase })`. */
  keys?: KeyBackend;
  /** Cap on a leaf's lifetime. Default: 7 days. */
  maxLeafTtlMs?: number;
  /** Renew the intermediate when less than this is left. Default: 30 days. */
  renewBeforeMs?: number;
}

/** One root in the trust bundle. */
export interface BundleRoot {
  pem: string;
  /** SHA-256 of the DER, lower-case hex without colons. */
  fingerprint: string;
  subject: string;
  /** ISO 8601. */
  notBefore: string;
  /** ISO 8601. */
  notAfter: string;
  generation: number;
}

/** The roots peers must trust now: every `published` or `active` generation's. */
export interface Bundle {
  /** Oldest generation first. */
  roots: BundleRoot[];
  /** The roots' PEM concatenated: node:tls `ca`. */
  pem: string;
  /** SHA-256 over the sorted root fingerprints joined by ","; changes whenever the set does. */
  fingerprint: string;
}

/** One generation as `status()` reports it. */
export interface GenerationStatus {
  id: number;
  stage: Stage;
  /** True for operator-supplied material, which cannot be rotated or renewed here. */
  imported: boolean;
  rootFingerprint: string;
  /** ISO 8601. */
  rootNotAfter: string;
  /** ISO 8601 of the current intermediate. */
  intermediateNotAfter: string;
}

/** What {@link CertificateAuthority.maintain} did. */
export interface MaintenanceReport {
  /** True when the active intermediate was replaced. */
  renewed: boolean;
  /** ISO 8601 of the active intermediate after maintenance. */
  intermediateNotAfter: string;
  /** Set when something needs an operator (an imported intermediate close to expiry). */
  warning?: string;
}

const GenerationRecordSchema = z.strictObject({
  id: z.number().int().positive(),
  stage: z.enum(["published", "active", "retired"]),
  imported: z.boolean(),
  /** File stem of the current intermediate in `gen-<id>/`. */
  intermediate: z.string().regex(/^intermediate(-[0-9]+)?$/),
  rootFingerprint: z.string().regex(/^[0-9a-f]{64}$/),
  rootNotAfter: z.iso.datetime(),
  intermediateNotAfter: z.iso.datetime(),
  createdAt: z.iso.datetime(),
});
type GenerationRecord = z.infer<typeof GenerationRecordSchema>;

const StateSchema = z.strictObject({
  version: z.literal(1),
  trustDomain: z.string(),
  generations: z.array(GenerationRecordSchema).min(1),
});
type State = z.infer<typeof StateSchema>;

/** A certificate with the forms of it we keep using. */
interface CertFile {
  cert: x509.X509Certificate;
  der: Bytes;
  pem: string;
}

/** A generation whose files are loaded (every stage but `retired`). */
interface Loaded {
  root: CertFile;
  intermediate: CertFile;
  intermediateKey: SigningKey;
  /** Imported CAs only: CA certificates between the intermediate and the root. */
  between: CertFile[];
}

// SPIFFE ID spec §2.1: lower-case letters, digits, '.', '-', '_'.
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;

function certFile(der: Bytes): CertFile {
  const cert = new x509.X509Certificate(der);
  return { cert, der, pem: cert.toString("pem") + "\n" };
}

/** SHA-256 of `der`, lower-case hex without colons. */
export function fingerprintOf(der: Uint8Array): string {
  return createHash("sha256").update(der).digest("hex");
}

function iso(ms: number | Date): string {
  return new Date(ms).toISOString();
}

function stemNumber(stem: string): number {
  return stem === "intermediate" ? 1 : Number(stem.slice("intermediate-".length));
}

/**
 * Roots and intermediates on disk, the trust bundle, rotation, and signing.
 * Mutations (`prepareNext`, `activate`, `retire`, `maintain`) run one at a
 * time and persist before they return; reads (`bundle`, `status`,
 * `signingRootFingerprint`, `chainPem`) are synchronous and cheap. One
 * process owns a CA directory.
 */
export class CertificateAuthority {
  readonly #dir: string;
  readonly #trustDomain: string;
  readonly #clock: Clock;
  readonly #keys: KeyBackend;
  readonly #maxLeafTtlMs: number;
  readonly #renewBeforeMs: number;
  #state: State;
  readonly #loaded = new Map<number, Loaded>();
  #signer!: Signer;
  #bundle!: Bundle;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(options: AuthorityOptions, keys: KeyBackend, state: State) {
    this.#dir = options.dir;
    this.#trustDomain = options.trustDomain;
    this.#clock = options.clock;
    this.#keys = keys;
    this.#maxLeafTtlMs = options.maxLeafTtlMs ?? DEFAULT_MAX_LEAF_TTL_MS;
    this.#renewBeforeMs = options.renewBeforeMs ?? DEFAULT_RENEW_BEFORE_MS;
    this.#state = state;
  }

  /**
   * Opens the CA in `options.dir`: loads it, or on first open creates
   * generation 1 (or adopts `options.import`), then renews the intermediate
   * if it is close to expiry.
   */
  static async open(options: AuthorityOptions): Promise<CertificateAuthority> {
    if (!TRUST_DOMAIN.test(options.trustDomain)) {
      const message = `Trust domain "${options.trustDomain}" is not valid: ` +
        "use lower-case letters, digits, '.', '-' and '_'";
      throw new InvalidError(message, [{ pointer: "/trustDomain", message }]);
    }
    const keys = options.keys ??
      new FileKeyBackend(
        options.dir,
        options.passphrase === undefined ? {} : { passphrase: options.passphrase },
      );
    await ensurePrivateDir(options.dir);
    const statePath = join(options.dir, "state.json");
    const text = await readTextIfExists(statePath);
    let ca: CertificateAuthority;
    if (text === undefined) {
      const empty: State = { version: 1, trustDomain: options.trustDomain, generations: [] };
      ca = new CertificateAuthority(options, keys, empty);
      if (options.import) await ca.#adopt(options.import, options.passphrase);
      else await ca.#create(1, "active");
    } else {
      const state = parseState(text, statePath);
      if (state.trustDomain !== options.trustDomain) {
        throw new ConflictError(
          `The CA in "${options.dir}" is for trust domain "${state.trustDomain}", ` +
            `not "${options.trustDomain}": a trust domain cannot change`,
        );
      }
      ca = new CertificateAuthority(options, keys, state);
      for (const g of state.generations) {
        if (g.stage !== "retired") ca.#loaded.set(g.id, await ca.#load(g));
      }
      if (options.import) await ca.#checkSameImport(options.import);
    }
    ca.#refresh();
    await ca.#renewIfDue();
    return ca;
  }

  /** The SPIFFE trust domain. */
  get trustDomain(): string {
    return this.#trustDomain;
  }

  /** Fingerprint of the root that new certificates chain to (the active generation's). */
  get signingRootFingerprint(): string {
    return this.#signer.rootFingerprint;
  }

  /** The trust bundle; the same frozen object until the set of roots changes. */
  bundle(): Bundle {
    return this.#bundle;
  }

  /** PEM of the CA certificates that follow a leaf issued now (the active intermediate and any CA above it, not the root). */
  chainPem(): string {
    return this.#signer.chainPem;
  }

  /** Every generation, oldest first. */
  status(): GenerationStatus[] {
    return this.#state.generations.map((g) => ({
      id: g.id,
      stage: g.stage,
      imported: g.imported,
      rootFingerprint: g.rootFingerprint,
      rootNotAfter: g.rootNotAfter,
      intermediateNotAfter: g.intermediateNotAfter,
    }));
  }

  /** The signer the pipeline uses now; for benchmarks and tests. */
  signer(): Signer {
    return this.#signer;
  }

  /** Runs the signing pipeline (see `pipeline.ts`) for a workload certificate. */
  issue(request: LeafRequest): Promise<IssuedLeaf> {
    if (this.#closed) return Promise.reject(new UnavailableError("The CA is closed"));
    const limits = { now: this.#clock.now(), maxTtlMs: this.#maxLeafTtlMs };
    return issueLeaf(this.#signer, request, limits);
  }

  /** Issues a TLS server certificate (serverAuth) with a new key; lifetime capped like a leaf's. */
  issueServerCertificate(request: ServerCertificateRequest): Promise<IssuedServerCertificate> {
    if (this.#closed) return Promise.reject(new UnavailableError("The CA is closed"));
    const limits = { now: this.#clock.now(), maxTtlMs: this.#maxLeafTtlMs };
    return issueServerCertificate(this.#signer, request, limits);
  }

  /** Creates the next generation in stage `published`: trusted in the bundle, not signing. */
  prepareNext(): Promise<GenerationStatus> {
    return this.#exclusive(async () => {
      const id = nextGenerationId(this.#state.generations);
      await this.#create(id, "published");
      this.#refresh();
      return this.#statusOf(id);
    });
  }

  /** Makes generation `id` the signer; the previous signer stays trusted as `published`. */
  activate(id: number): Promise<GenerationStatus> {
    return this.#exclusive(async () => {
      const generations = activateGeneration(this.#state.generations, id);
      await this.#save({ ...this.#state, generations });
      this.#refresh();
      // A generation that waited long as `published` may need a fresh intermediate.
      await this.#renewIfDue();
      return this.#statusOf(id);
    });
  }

  /** Drops generation `id` (not the active one) from the bundle, for good. */
  retire(id: number): Promise<GenerationStatus> {
    return this.#exclusive(async () => {
      const generations = retireGeneration(this.#state.generations, id);
      await this.#save({ ...this.#state, generations });
      this.#loaded.delete(id);
      this.#refresh();
      return this.#statusOf(id);
    });
  }

  /**
   * Replaces the active intermediate when less than `renewBeforeMs` is left
   * (same root, new key), so a one-year intermediate never silently expires.
   * Call it periodically (e.g. hourly); it also runs at open.
   */
  maintain(): Promise<MaintenanceReport> {
    return this.#exclusive(() => this.#renewIfDue());
  }

  /**
   * Closes the CA; issuing afterwards fails with `UnavailableError`.
   * (Deno's WebCrypto already signs and verifies on a thread pool, so
   * issuance uses both cores without workers; a worker pool was measured and
   * cost 15% more CPU per certificate, see docs/benchmarks.md.)
   */
  close(): void {
    this.#closed = true;
  }

  // ------------------------------------------------------------ internals

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => {});
    return run;
  }

  #statusOf(id: number): GenerationStatus {
    return this.status().find((g) => g.id === id)!;
  }

  #genDir(id: number): string {
    return join(this.#dir, `gen-${id}`);
  }

  async #save(state: State): Promise<void> {
    await writeFileAtomic(join(this.#dir, "state.json"), JSON.stringify(state, null, 2) + "\n");
    this.#state = state;
  }

  async #writeCert(id: number, file: string, pem: string): Promise<void> {
    await ensurePrivateDir(this.#genDir(id));
    await writeFileAtomic(join(this.#genDir(id), file), pem, { mode: 0o644 });
  }

  /** Creates generation `id` (root, intermediate, files) and records it in `stage`. */
  async #create(id: number, stage: Stage): Promise<void> {
    const now = this.#clock.now();
    const rootKey = await this.#keys.generate(`gen-${id}/root`);
    const root = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerialHex(),
      name: [{ O: ["Ironmesh"] }, { CN: [`Ironmesh Root CA ${this.#trustDomain} ${id}`] }],
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + ROOT_TTL_MS),
      keys: { privateKey: rootKey.privateKey, publicKey: rootKey.publicKey },
      signingAlgorithm: ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
          true,
        ),
        new x509.SubjectKeyIdentifierExtension(hex(keyIdentifier(publicKeyBits(rootKey.spki)))),
      ],
    });
    const rootFile = certFile(new Uint8Array(root.rawData));
    await this.#writeCert(id, "root.crt", rootFile.pem);
    const stem = "intermediate";
    const loaded = await this.#newIntermediate(id, stem, rootFile, rootKey);
    const record: GenerationRecord = {
      id,
      stage,
      imported: false,
      intermediate: stem,
      rootFingerprint: fingerprintOf(rootFile.der),
      rootNotAfter: iso(root.notAfter),
      intermediateNotAfter: iso(loaded.intermediate.cert.notAfter),
      createdAt: iso(now),
    };
    await this.#save({ ...this.#state, generations: [...this.#state.generations, record] });
    this.#loaded.set(id, loaded);
  }

  /** Issues and writes an intermediate for generation `id` under `gen-<id>/<stem>.*`. */
  async #newIntermediate(
    id: number,
    stem: string,
    root: CertFile,
    rootKey: SigningKey,
  ): Promise<Loaded> {
    const now = this.#clock.now();
    const key = await this.#keys.generate(`gen-${id}/${stem}`);
    const rootSki = root.cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId ??
      hex(keyIdentifier(publicKeyBits(new Uint8Array(root.cert.publicKey.rawData))));
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerialHex(),
      subject: [
        { O: ["Ironmesh"] },
        { CN: [`Ironmesh Intermediate CA ${this.#trustDomain} ${id}`] },
      ],
      issuer: root.cert.subjectName,
      notBefore: new Date(now - 60_000),
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
    const intermediate = certFile(new Uint8Array(cert.rawData));
    await this.#writeCert(id, `${stem}.crt`, intermediate.pem);
    return { root, intermediate, intermediateKey: key, between: [] };
  }

  /** Adopts operator-supplied material as generation 1. */
  async #adopt(files: ImportFiles, passphrase: string | undefined): Promise<void> {
    const ca = await readImport(files, { clock: this.#clock, passphrase });
    const pkcs8 = new Uint8Array(ca.key.export({ type: "pkcs8", format: "der" }));
    const key = await this.#keys.store("gen-1/intermediate", pkcs8);
    const root = certFile(new Uint8Array(ca.root.rawData));
    const intermediate = certFile(new Uint8Array(ca.signing.rawData));
    const between = ca.between.map((c) => certFile(new Uint8Array(c.rawData)));
    await this.#writeCert(1, "root.crt", root.pem);
    await this.#writeCert(1, "intermediate.crt", intermediate.pem);
    await this.#writeCert(1, "chain.crt", between.map((c) => c.pem).join(""));
    const record: GenerationRecord = {
      id: 1,
      stage: "active",
      imported: true,
      intermediate: "intermediate",
      rootFingerprint: fingerprintOf(root.der),
      rootNotAfter: iso(ca.root.notAfter),
      intermediateNotAfter: iso(ca.signing.notAfter),
      createdAt: iso(this.#clock.now()),
    };
    await this.#save({ ...this.#state, generations: [record] });
    this.#loaded.set(1, { root, intermediate, intermediateKey: key, between });
  }

  /** Refuses to silently ignore an `import` that differs from what this directory holds. */
  async #checkSameImport(files: ImportFiles): Promise<void> {
    const first = this.#loaded.get(1);
    let same = false;
    try {
      const der = decodeCertificates(await Deno.readTextFile(files.certFile))[0];
      same = !!first && !!der && fingerprintOf(der) === fingerprintOf(first.intermediate.der);
    } catch {
      same = false;
    }
    if (!same) {
      throw new ConflictError(
        `The CA in "${this.#dir}" already exists and is not the one in "${files.certFile}": ` +
          "import into an empty directory",
      );
    }
  }

  /** Reads a generation's files and checks them against `record`. */
  async #load(record: GenerationRecord): Promise<Loaded> {
    const dir = this.#genDir(record.id);
    const read = async (file: string, optional = false): Promise<CertFile[]> => {
      const path = join(dir, file);
      const text = await readTextIfExists(path);
      if (text === undefined) {
        if (optional) return [];
        throw corrupt(path, "the file is missing");
      }
      try {
        return decodeCertificates(text).map(certFile);
      } catch {
        throw corrupt(path, "it does not hold valid certificates");
      }
    };
    const [root] = await read("root.crt");
    const [intermediate] = await read(`${record.intermediate}.crt`);
    const between = await read("chain.crt", true);
    if (!root || !intermediate) throw corrupt(dir, "a certificate file is empty");
    if (fingerprintOf(root.der) !== record.rootFingerprint) {
      throw corrupt(join(dir, "root.crt"), "it is not the root recorded in state.json");
    }
    const key = await this.#keys.load(`gen-${record.id}/${record.intermediate}`);
    const certSpki = new Uint8Array(intermediate.cert.publicKey.rawData);
    if (hex(certSpki) !== hex(key.spki)) {
      throw corrupt(join(dir, `${record.intermediate}.key`), "it does not match its certificate");
    }
    return { root, intermediate, intermediateKey: key, between };
  }

  /** Recomputes the signer and the bundle from the state; called after every change. */
  #refresh(): void {
    const active = activeGeneration(this.#state.generations);
    const loaded = this.#loaded.get(active.id)!;
    const cas = [loaded.intermediate, ...loaded.between, loaded.root];
    const ski = loaded.intermediate.cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
    this.#signer = {
      key: loaded.intermediateKey.privateKey,
      issuer: {
        name: subjectNameOf(loaded.intermediate.der),
        keyId: ski ? fromHex(ski) : keyIdentifier(publicKeyBits(loaded.intermediateKey.spki)),
      },
      notBefore: Math.max(...cas.map((c) => c.cert.notBefore.getTime())),
      notAfter: Math.min(...cas.map((c) => c.cert.notAfter.getTime())),
      chainPem: [loaded.intermediate, ...loaded.between]
        .filter((c) => c !== loaded.root && c.pem !== loaded.root.pem)
        .map((c) => c.pem)
        .join(""),
      rootFingerprint: active.rootFingerprint,
      trustDomain: this.#trustDomain,
    };
    const roots: BundleRoot[] = this.#state.generations
      .filter((g) => g.stage !== "retired")
      .map((g) => {
        const root = this.#loaded.get(g.id)!.root;
        return {
          pem: root.pem,
          fingerprint: g.rootFingerprint,
          subject: root.cert.subject,
          notBefore: iso(root.cert.notBefore),
          notAfter: iso(root.cert.notAfter),
          generation: g.id,
        };
      });
    const fingerprint = createHash("sha256")
      .update(roots.map((r) => r.fingerprint).sort().join(","))
      .digest("hex");
    this.#bundle = deepFreeze({ roots, pem: roots.map((r) => r.pem).join(""), fingerprint });
  }

  async #renewIfDue(): Promise<MaintenanceReport> {
    const active = activeGeneration(this.#state.generations);
    const loaded = this.#loaded.get(active.id)!;
    const now = this.#clock.now();
    const notAfter = loaded.intermediate.cert.notAfter.getTime();
    const report = (renewed: boolean, warning?: string): MaintenanceReport => ({
      renewed,
      intermediateNotAfter: this.#statusOf(active.id).intermediateNotAfter,
      ...(warning === undefined ? {} : { warning }),
    });
    if (notAfter - now >= this.#renewBeforeMs) return report(false);
    if (active.imported) {
      return report(
        false,
        `The imported signing CA expires at "${iso(notAfter)}": import a new one before then`,
      );
    }
    // A root that ends before a new intermediate would add nothing; rotate the root instead.
    if (loaded.root.cert.notAfter.getTime() <= notAfter) {
      return report(
        false,
        `Root of generation "${active.id}" expires at "${iso(loaded.root.cert.notAfter)}": ` +
          "rotate to a new generation",
      );
    }
    const stem = `intermediate-${stemNumber(active.intermediate) + 1}`;
    const rootKey = await this.#keys.load(`gen-${active.id}/root`);
    const next = await this.#newIntermediate(active.id, stem, loaded.root, rootKey);
    const generations = this.#state.generations.map((g) =>
      g.id === active.id
        ? { ...g, intermediate: stem, intermediateNotAfter: iso(next.intermediate.cert.notAfter) }
        : g
    );
    await this.#save({ ...this.#state, generations });
    this.#loaded.set(active.id, next);
    this.#refresh();
    // The old certificate stays for leaves still chained to it; its key signs nothing any more.
    await this.#keys.remove(`gen-${active.id}/${active.intermediate}`);
    return report(true);
  }
}

function parseState(text: string, path: string): State {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw corrupt(path, "it is not valid JSON");
  }
  const parsed = StateSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw corrupt(path, `/${issue.path.join("/")}: ${issue.message}`);
  }
  activeGeneration(parsed.data.generations);
  return parsed.data;
}

function corrupt(path: string, why: string): InvalidError {
  const message = `CA file "${path}" cannot be used: ${why}`;
  return new InvalidError(message, [{ pointer: "", message }]);
}

function hex(bytes: Uint8Array): string {
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

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
