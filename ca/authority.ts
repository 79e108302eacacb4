/**
 * The certificate authority: the trust bundle, the rotation primitives and
 * the entry points of the signing pipeline, over the CA generations kept in
 * the CA's material (`generations.ts`, whose root and intermediate templates
 * are in `ca_certificates.ts`; `material.ts`: a directory, or the store the
 * replicas share). Leaves are signed by `pipeline.ts`.
 */
import { createHash } from "node:crypto";
import type { Clock } from "../core/clock.ts";
import { ConflictError, InvalidError, UnavailableError } from "../core/errors.ts";
import { caKeyIdentifier, fingerprintOf } from "./ca_certificates.ts";
import {
  CaDirectory,
  type CaState,
  type GenerationRecord,
  iso,
  type LoadedGeneration,
  nextIntermediateStem,
} from "./generations.ts";
import type { ImportFiles } from "./import.ts";
import { type KeyBackend, PemKeyBackend } from "./keys.ts";
import { type CaMaterial, DirectoryMaterial } from "./material.ts";
import { subjectNameOf } from "./leaf.ts";
import { decodeCertificates } from "./pem.ts";
import { DEFAULT_MAX_LEAF_TTL_MS } from "../core/server_config.ts";
import {
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

/** An intermediate with less than this left is replaced: 30 days. */
export const DEFAULT_RENEW_BEFORE_MS = 30 * 24 * 60 * 60 * 1000;

/** Options of {@link CertificateAuthority.open}. */
export interface AuthorityOptions {
  /** Directory of the CA files; created with mode 0700. Ignored when `material` is given. */
  dir: string;
  /** Where the CA is kept instead of `dir` (the shared store of replicas). Default: `dir`. */
  material?: CaMaterial;
  /**
   * Renew a due intermediate at open. Default: true; replicas pass whether they lead, since
   * renewal is the leader's duty.
   */
  renew?: boolean;
  /** SPIFFE trust domain, e.g. `ironmesh.local`; fixed once the CA exists. */
  trustDomain: string;
  clock: Clock;
  /** Encrypts private keys at rest (and decrypts an encrypted imported key). Default: none. */
  passphrase?: string;
  /** Adopt an operator's CA instead of creating one; only on first open. Default: create. */
  import?: ImportFiles;
  /** Where private keys live. Default: `PemKeyBackend(material, { passphrase })`. */
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
  /**
   * The roots no longer trusted, oldest first: an agent whose join token pins one of them can
   * say that the token predates a rotation instead of suspecting an interception.
   */
  retired: RetiredRoot[];
}

/** A root a rotation retired: only its fingerprint and generation, never trusted again. */
export interface RetiredRoot {
  /** SHA-256 of the DER, lower-case hex without colons. */
  fingerprint: string;
  generation: number;
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

// SPIFFE ID spec §2.1: lower-case letters, digits, '.', '-', '_'.
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;

/**
 * Roots and intermediates, the trust bundle, rotation, and signing.
 * Mutations (`prepareNext`, `activate`, `retire`, `maintain`) run one at a
 * time and persist before they return; reads (`bundle`, `status`,
 * `signingRootFingerprint`, `chainPem`) are synchronous and cheap. One
 * process owns a CA directory; on a shared store each mutation holds the
 * store's CA lock and first reads what other replicas changed, and
 * {@link reload} picks up their changes in between.
 */
export class CertificateAuthority {
  readonly #files: CaDirectory;
  readonly #trustDomain: string;
  readonly #clock: Clock;
  readonly #maxLeafTtlMs: number;
  readonly #renewBeforeMs: number;
  #state: CaState;
  #loaded = new Map<number, LoadedGeneration>();
  #signer!: Signer;
  #bundle!: Bundle;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(options: AuthorityOptions, files: CaDirectory, state: CaState) {
    this.#files = files;
    this.#trustDomain = options.trustDomain;
    this.#clock = options.clock;
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
    const material = options.material ?? new DirectoryMaterial(options.dir);
    const keys = options.keys ??
      new PemKeyBackend(
        material,
        options.passphrase === undefined ? {} : { passphrase: options.passphrase },
      );
    const files = new CaDirectory(material, keys);
    // Under the lock: two replicas starting on an empty database create one CA, not two.
    return await material.exclusive(() => CertificateAuthority.#open(options, files));
  }

  static async #open(options: AuthorityOptions, files: CaDirectory) {
    const state = await files.readState();
    let ca: CertificateAuthority;
    if (state === undefined) {
      const empty: CaState = { version: 1, trustDomain: options.trustDomain, generations: [] };
      ca = new CertificateAuthority(options, files, empty);
      const first = options.import
        ? await files.adopt(options.import, {
          clock: options.clock,
          passphrase: options.passphrase,
        })
        : await files.create(1, "active", options.trustDomain, options.clock.now());
      await ca.#add(first.record, first.loaded);
    } else {
      if (state.trustDomain !== options.trustDomain) {
        throw new ConflictError(
          `The CA in "${files.path}" is for trust domain "${state.trustDomain}", ` +
            `not "${options.trustDomain}": a trust domain cannot change`,
        );
      }
      ca = new CertificateAuthority(options, files, state);
      for (const g of state.generations) {
        if (g.stage !== "retired") ca.#loaded.set(g.id, await files.load(g));
      }
      if (options.import) await ca.#checkSameImport(options.import);
    }
    ca.#refresh();
    if (options.renew ?? true) await ca.#renewIfDue();
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
      const next = await this.#files.create(id, "published", this.#trustDomain, this.#clock.now());
      await this.#add(next.record, next.loaded);
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
   * Re-reads a shared CA that another replica changed (its `state.json`
   * moved in the revision log): the bundle and signer follow. Does nothing
   * on a CA only this process keeps.
   */
  reload(): Promise<void> {
    return this.#exclusive(() => Promise.resolve());
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
    const locked = () =>
      this.#files.material.exclusive(async () => {
        await this.#sync();
        return await fn();
      });
    const run = this.#queue.then(locked, locked);
    this.#queue = run.catch(() => {});
    return run;
  }

  /** Takes in what other replicas changed in a shared CA since this one last looked. */
  async #sync(): Promise<void> {
    if (!this.#files.material.shared) return;
    const state = await this.#files.readState();
    if (!state || JSON.stringify(state) === JSON.stringify(this.#state)) return;
    const loaded = new Map<number, LoadedGeneration>();
    for (const g of state.generations) {
      if (g.stage === "retired") continue;
      const before = this.#state.generations.find((x) => x.id === g.id);
      const kept = before?.intermediate === g.intermediate ? this.#loaded.get(g.id) : undefined;
      loaded.set(g.id, kept ?? await this.#files.load(g));
    }
    this.#state = state;
    this.#loaded = loaded;
    this.#refresh();
  }

  #statusOf(id: number): GenerationStatus {
    return this.status().find((g) => g.id === id)!;
  }

  async #save(state: CaState): Promise<void> {
    await this.#files.save(state);
    this.#state = state;
  }

  /** Records a generation whose files are written: `state.json` names it from now on. */
  async #add(record: GenerationRecord, loaded: LoadedGeneration): Promise<void> {
    await this.#save({ ...this.#state, generations: [...this.#state.generations, record] });
    this.#loaded.set(record.id, loaded);
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
        `The CA in "${this.#files.path}" already exists and is not the one in "${files.certFile}": ` +
          "import into an empty directory",
      );
    }
  }

  /** Recomputes the signer and the bundle from the state; called after every change. */
  #refresh(): void {
    const active = activeGeneration(this.#state.generations);
    const loaded = this.#loaded.get(active.id)!;
    const cas = [loaded.intermediate, ...loaded.between, loaded.root];
    this.#signer = {
      key: loaded.intermediateKey.privateKey,
      issuer: {
        name: subjectNameOf(loaded.intermediate.der),
        keyId: caKeyIdentifier(loaded.intermediate, loaded.intermediateKey),
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
    const retired: RetiredRoot[] = this.#state.generations
      .filter((g) => g.stage === "retired")
      .map((g) => ({ fingerprint: g.rootFingerprint, generation: g.id }));
    this.#bundle = deepFreeze({
      roots,
      pem: roots.map((r) => r.pem).join(""),
      fingerprint,
      retired,
    });
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
    const stem = nextIntermediateStem(active.intermediate);
    const next = await this.#files.newIntermediate(active.id, stem, {
      root: loaded.root,
      rootKey: await this.#files.rootKey(active.id),
      trustDomain: this.#trustDomain,
      now,
    });
    const generations = this.#state.generations.map((g) =>
      g.id === active.id
        ? { ...g, intermediate: stem, intermediateNotAfter: iso(next.intermediate.cert.notAfter) }
        : g
    );
    await this.#save({ ...this.#state, generations });
    this.#loaded.set(active.id, next);
    this.#refresh();
    // The old certificate stays for leaves still chained to it; its key signs nothing any more.
    await this.#files.removeIntermediateKey(active.id, active.intermediate);
    return report(true);
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
