import type { Clock } from "../core/clock.ts";
import {
  ConflictError,
  ForbiddenError,
  InvalidError,
  MeshError,
  RateLimitedError,
  UnauthorizedError,
} from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import type { CertificateRecord, IssuanceKind, JoinTokenCreate } from "../core/model.ts";
import { isNodeName, NODE_NAME_RULE } from "../core/names.ts";
import { TokenBucket } from "../core/rate_limit.ts";
import { parseSpiffeId } from "../core/spiffe_id.ts";
import type { RevocationTarget, Store } from "../store/store.ts";
import type { Bundle, CertificateAuthority } from "./authority.ts";
import type { CreatedJoinToken, JoinTokens } from "./join_tokens.ts";
import type { IssuedLeaf } from "./pipeline.ts";

/** What the identity service needs from the certificate authority (how to sign, where keys live). */
export type Authority = Pick<
  CertificateAuthority,
  | "trustDomain"
  | "bundle"
  | "signingRootFingerprint"
  | "status"
  | "issue"
  | "prepareNext"
  | "activate"
  | "retire"
>;

/** A caller authenticated by a mesh certificate. */
export interface CertificatePrincipal {
  node: string;
  identity: string;
  serial: string;
  /** Fingerprint of the root the presented chain ends in. */
  root: string;
  notAfter: string;
}

/** What a verified TLS peer looks like (a subset of node:tls's `PeerCertificate`). */
export interface PeerCertificate {
  subject?: { CN?: string | string[] };
  subjectaltname?: string;
  serialNumber?: string;
  valid_to?: string;
  fingerprint256?: string;
  issuerCertificate?: PeerCertificate;
}

/** What enrolment and renewal answer. */
export interface IssuedIdentity {
  node: string;
  identity: string;
  serial: string;
  certificate: string;
  bundle: string;
  bundleFingerprint: string;
  notAfter: string;
}

/** The stage of a root rotation, derived from the CA generations. */
export type RotationStage = "steady" | "published" | "switched";

/** Options of {@link IdentityService}. */
export interface IdentityOptions {
  clock: Clock;
  log: Logger;
  /** Lifetime of workload certificates. */
  leafTtlMs: number;
  /** The lifetime to issue with now, when it differs from `leafTtlMs` (MeshConfig sets it). */
  currentLeafTtlMs?: () => number | undefined;
  /** Renewals granted per second, sustained. Default: 50. */
  renewRatePerSecond?: number;
  /** Renewals granted at once. Default: 100. */
  renewBurst?: number;
  /** Nodes that are heartbeating now; a rotation waits for them to fetch the new bundle. */
  liveNodes: () => Promise<string[]>;
  /**
   * Record in the store which bundle each node holds, and consult it, so a rotation moved on by
   * one replica (the leader) counts the fetches made from the others. Default: false (one
   * server, which sees every fetch itself).
   */
  shareBundleFetches?: boolean;
}

/** The setting that records the bundle fingerprint node `<name>` last held (shared stores). */
const BUNDLE_META = "bundle-held:";

/** Metrics hooks; counted by the caller's metrics registry. */
export interface IdentityEvents {
  /** A certificate was issued to `node` (an enrolment may give it another identity). */
  issued?: (kind: IssuanceKind, node: string) => void;
  refused?: (kind: IssuanceKind, reason: string) => void;
  tokenUsed?: () => void;
  tokenRefused?: () => void;
  /** Certificates of these nodes were revoked: close their connections. */
  revoked?: (nodes: string[]) => void;
  /** The bundle or the signing CA changed: reload TLS trust and the server certificate. */
  trustChanged?: () => void;
}

/** A bounded metric label for a refusal: the error kind (`Invalid`, `Forbidden`, …). */
function reasonOf(error: unknown): string {
  return error instanceof MeshError ? error.kind : "Internal";
}

/** Normalizes a certificate serial for comparison: lower-case hex without leading zeros. */
export function normalizeSerial(serial: string): string {
  return serial.toLowerCase().replace(/^0+(?=.)/, "");
}

function fingerprintHex(colonHex: string): string {
  return colonHex.replaceAll(":", "").toLowerCase();
}

/**
 * Who may get which certificate, and when it stops being trusted.
 *
 * Provisioners: a join token (first enrolment) and the current certificate
 * (renewal). Signing itself is the authority's fixed pipeline; this service
 * records every issuance, keeps the deny list of revoked serials in memory
 * (checked on every mTLS request), and drives root rotation from stage to
 * stage as its conditions are met.
 */
export class IdentityService {
  readonly #store: Store;
  readonly #authority: Authority;
  readonly #tokens: JoinTokens;
  readonly #options: IdentityOptions;
  readonly #renewals: TokenBucket;
  readonly #denied = new Map<string, number>();
  readonly #bundleSeen = new Map<string, string>();
  events: IdentityEvents = {};

  constructor(store: Store, authority: Authority, tokens: JoinTokens, options: IdentityOptions) {
    this.#store = store;
    this.#authority = authority;
    this.#tokens = tokens;
    this.#options = options;
    this.#renewals = new TokenBucket(
      options.clock,
      options.renewRatePerSecond ?? 50,
      options.renewBurst ?? 100,
    );
  }

  /** Loads the deny list: revoked certificates that have not expired yet. */
  async start(): Promise<void> {
    const now = this.#iso();
    for (const c of await this.#store.listCertificates({ revoked: true, liveAt: now })) {
      this.#denied.set(normalizeSerial(c.serial), Date.parse(c.notAfter));
    }
  }

  #iso(): string {
    return new Date(this.#options.clock.now()).toISOString();
  }

  /** The trust domain. */
  get trustDomain(): string {
    return this.#authority.trustDomain;
  }

  /** The current trust bundle. */
  bundle(): Bundle {
    return this.#authority.bundle();
  }

  /** Creates a join token that names `servers` and pins the signing root. */
  createJoinToken(request: JoinTokenCreate, servers: string[]): Promise<CreatedJoinToken> {
    return this.#tokens.create(request, {
      trustDomain: this.#authority.trustDomain,
      servers,
      pin: `sha256:${this.#authority.signingRootFingerprint}`,
    });
  }

  /**
   * Enrols a host: checks the join token, signs its CSR for the identity the
   * token allows, and records the certificate together with the token's use,
   * so a replayed token gets nothing.
   */
  async enrol(request: { token: string; csr: string; node: string }): Promise<IssuedIdentity> {
    let verified;
    try {
      verified = await this.#tokens.verify(request.token);
    } catch (error) {
      this.events.tokenRefused?.();
      this.events.refused?.("enrol", "token");
      throw error;
    }
    const { record } = verified;
    const node = request.node;
    try {
      if (!isNodeName(node)) {
        throw new InvalidError(`Invalid node name "${node}": must be ${NODE_NAME_RULE}`, [{
          pointer: "/node",
          message: `Must be ${NODE_NAME_RULE}`,
        }]);
      }
      if (record.node !== null && record.node !== node) {
        throw new ForbiddenError(
          `Join token "${record.id}" enrols node "${record.node}" only, not "${node}"`,
        );
      }
      if (record.node === null) await this.#refuseTakeover(node, record.id);
      const leaf = await this.#authority.issue({
        csrPem: request.csr,
        node,
        namespace: record.namespace,
        serviceAccount: record.serviceAccount,
        ttlMs: this.#options.currentLeafTtlMs?.() ?? this.#options.leafTtlMs,
      });
      await this.#store.recordIssuance(this.#record(leaf, "enrol", record.id), {
        tokenId: record.id,
        at: this.#iso(),
      });
      this.events.tokenUsed?.();
      this.events.issued?.("enrol", node);
      this.#options.log.info("Node enrolled", {
        node,
        identity: leaf.identity,
        serial: leaf.serial,
        token: record.id,
        notAfter: leaf.notAfter,
      });
      return this.#answer(leaf);
    } catch (error) {
      this.events.refused?.("enrol", reasonOf(error));
      throw error;
    }
  }

  /**
   * A join token that does not name the node may not take over a node that
   * another token's lineage holds a valid certificate for: otherwise any
   * token holder could impersonate any host.
   */
  async #refuseTakeover(node: string, tokenId: string): Promise<void> {
    const current = await this.#store.listCertificates({
      node,
      current: true,
      liveAt: this.#iso(),
    });
    const holder = current.find((c) => c.tokenId !== tokenId);
    if (holder) {
      throw new ForbiddenError(
        `Node "${node}" is already enrolled (certificate valid until ${holder.notAfter}): ` +
          `use a join token created with --node ${node}, or decommission the node first`,
      );
    }
  }

  /** Renews a certificate for the identity the caller's current certificate proves. */
  async renew(principal: CertificatePrincipal, csr: string): Promise<IssuedIdentity> {
    const wait = this.#renewals.take();
    if (wait > 0) {
      this.events.refused?.("renew", "rate-limited");
      throw new RateLimitedError(
        `Too many renewals right now: retry in ${Math.ceil(wait / 1000)}s`,
        wait,
      );
    }
    const parts = parseSpiffeId(principal.identity);
    if (!parts || parts.trustDomain !== this.#authority.trustDomain) {
      this.events.refused?.("renew", "identity");
      throw new ForbiddenError(`Identity "${principal.identity}" is not of this trust domain`);
    }
    try {
      const current = await this.#store.getCertificate(principal.serial);
      const leaf = await this.#authority.issue({
        csrPem: csr,
        node: principal.node,
        namespace: parts.namespace,
        serviceAccount: parts.serviceAccount,
        ttlMs: this.#options.currentLeafTtlMs?.() ?? this.#options.leafTtlMs,
      });
      await this.#store.recordIssuance(this.#record(leaf, "renew", current?.tokenId ?? null));
      this.events.issued?.("renew", principal.node);
      this.#options.log.info("Certificate renewed", {
        node: principal.node,
        serial: leaf.serial,
        notAfter: leaf.notAfter,
      });
      return this.#answer(leaf);
    } catch (error) {
      this.events.refused?.("renew", reasonOf(error));
      throw error;
    }
  }

  #record(leaf: IssuedLeaf, kind: IssuanceKind, tokenId: string | null): CertificateRecord {
    return {
      serial: normalizeSerial(leaf.serial),
      node: leaf.node,
      identity: leaf.identity,
      tokenId,
      root: leaf.root,
      kind,
      notBefore: leaf.notBefore,
      notAfter: leaf.notAfter,
      issuedAt: this.#iso(),
      supersededAt: null,
      revokedAt: null,
      revokeReason: null,
    };
  }

  #answer(leaf: IssuedLeaf): IssuedIdentity {
    const bundle = this.#authority.bundle();
    // The answer carries the bundle, so the node now holds it (a rotation waits for this).
    this.bundleFetched(leaf.node, bundle.fingerprint);
    return {
      node: leaf.node,
      identity: leaf.identity,
      serial: normalizeSerial(leaf.serial),
      certificate: leaf.chainPem,
      bundle: bundle.pem,
      bundleFingerprint: bundle.fingerprint,
      notAfter: leaf.notAfter,
    };
  }

  /**
   * Turns a TLS peer into a principal. The TLS layer has already checked the
   * chain against the bundle (`authorized`); this adds what TLS cannot know:
   * the deny list, and that the certificate is one of ours in shape.
   */
  authenticate(
    authorized: boolean,
    authorizationError: unknown,
    peer: PeerCertificate,
  ): CertificatePrincipal {
    if (!authorized) {
      const reason = String(authorizationError ?? "unknown");
      if (reason === "CERT_HAS_EXPIRED") {
        throw new UnauthorizedError(
          "Client certificate has expired: an expired certificate cannot renew itself; re-enrol the host with a new join token",
        );
      }
      throw new UnauthorizedError(`Client certificate is not trusted by this mesh: ${reason}`);
    }
    const serial = normalizeSerial(peer.serialNumber ?? "");
    const until = this.#denied.get(serial);
    if (until !== undefined) {
      if (until > this.#options.clock.now()) {
        throw new UnauthorizedError(`Client certificate ${serial} has been revoked`);
      }
      this.#denied.delete(serial);
    }
    const cn = Array.isArray(peer.subject?.CN) ? peer.subject.CN[0] : peer.subject?.CN;
    const uri = /(?:^|, )URI:([^,]+)/.exec(peer.subjectaltname ?? "")?.[1];
    const parts = uri ? parseSpiffeId(uri) : undefined;
    if (!cn || !uri || !parts) {
      throw new UnauthorizedError("Client certificate carries no node name and SPIFFE ID");
    }
    // A CA shared with another mesh (an imported root) could sign identities of its trust domain:
    // they are not ours, whatever they are used for (REST, xDS, renewal).
    if (parts.trustDomain !== this.#authority.trustDomain) {
      throw new UnauthorizedError(
        `Client certificate identity "${uri}" is of trust domain "${parts.trustDomain}", not this mesh's "${this.#authority.trustDomain}"`,
      );
    }
    let root = peer;
    for (let i = 0; i < 8 && root.issuerCertificate && root.issuerCertificate !== root; i++) {
      root = root.issuerCertificate;
    }
    return {
      node: cn,
      identity: uri,
      serial,
      root: fingerprintHex(root.fingerprint256 ?? ""),
      notAfter: new Date(peer.valid_to ?? 0).toISOString(),
    };
  }

  /** True while `serial` is revoked and unexpired. */
  isRevoked(serial: string): boolean {
    const until = this.#denied.get(normalizeSerial(serial));
    return until !== undefined && until > this.#options.clock.now();
  }

  /**
   * Re-reads certificates another replica wrote (shared store): a revoked
   * one joins the deny list and its node's connections here are closed, as
   * a revocation made on this replica does.
   */
  async certificatesChanged(serials: readonly string[]): Promise<void> {
    const nodes = new Set<string>();
    for (const serial of serials) {
      const c = await this.#store.getCertificate(serial);
      if (!c?.revokedAt || this.isRevoked(c.serial)) continue;
      this.#denied.set(normalizeSerial(c.serial), Date.parse(c.notAfter));
      nodes.add(c.node);
    }
    if (nodes.size > 0) this.events.revoked?.([...nodes]);
  }

  /** Revokes every certificate of a join token's lineage (the token itself is revoked by the caller). */
  revokeToken(tokenId: string): Promise<CertificateRecord[]> {
    return this.#revoke({ tokenId }, `join token ${tokenId} revoked`);
  }

  /** Revokes every certificate of a decommissioned node. */
  decommission(node: string): Promise<CertificateRecord[]> {
    return this.#revoke({ node }, "node decommissioned");
  }

  async #revoke(target: RevocationTarget, reason: string) {
    const revoked = await this.#store.revokeCertificates(target, this.#iso(), reason);
    for (const c of revoked) this.#denied.set(c.serial, Date.parse(c.notAfter));
    const nodes = [...new Set(revoked.map((c) => c.node))];
    if (nodes.length > 0) {
      this.#options.log.warn("Certificates revoked", { reason, nodes, count: revoked.length });
      this.events.revoked?.(nodes);
    }
    return revoked;
  }

  /** Notes that `node` fetched the bundle with `fingerprint` (rotation waits for this). */
  bundleFetched(node: string, fingerprint: string): void {
    if (this.#bundleSeen.get(node) === fingerprint) return;
    this.#bundleSeen.set(node, fingerprint);
    if (!this.#options.shareBundleFetches) return;
    // Written once per node and bundle, not per heartbeat: a rotation costs one write per node.
    this.#store.setMeta(BUNDLE_META + node, fingerprint).catch((error) => {
      this.#bundleSeen.delete(node);
      this.#options.log.warn("Cannot record which trust bundle a node holds", { node, error });
    });
  }

  /** What a heartbeat answer tells the agent: the bundle to trust and whether to renew now. */
  hints(principal: CertificatePrincipal): { bundleFingerprint: string; renew: boolean } {
    const stage = this.rotationStage();
    return {
      bundleFingerprint: this.#authority.bundle().fingerprint,
      renew: stage === "switched" && principal.root !== this.#authority.signingRootFingerprint,
    };
  }

  /** Where a root rotation stands, from the generations' stages. */
  rotationStage(): RotationStage {
    const gens = this.#authority.status();
    const active = gens.find((g) => g.stage === "active");
    if (!active) return "steady";
    if (gens.some((g) => g.stage === "published" && g.id > active.id)) return "published";
    if (gens.some((g) => g.stage === "published" && g.id < active.id)) return "switched";
    return "steady";
  }

  /** Starts a root rotation: a new root and intermediate, trusted at once but not yet signing. */
  async startRotation(): Promise<void> {
    if (this.rotationStage() !== "steady") {
      throw new ConflictError(
        `A root rotation is already in progress (stage "${this.rotationStage()}")`,
      );
    }
    await this.#authority.prepareNext();
    this.#options.log.info("Root rotation started: new root published in the bundle");
    this.events.trustChanged?.();
  }

  /** Rotation status for `ironmesh ca status`. */
  async rotationStatus() {
    const now = this.#iso();
    const current = await this.#store.listCertificates({ current: true, liveAt: now });
    const byRoot: Record<string, number> = {};
    for (const c of current) byRoot[c.root] = (byRoot[c.root] ?? 0) + 1;
    const signing = this.#authority.signingRootFingerprint;
    const bundle = this.#authority.bundle();
    return {
      stage: this.rotationStage(),
      signingRoot: signing,
      bundleFingerprint: bundle.fingerprint,
      generations: this.#authority.status(),
      leaves: current.length,
      leavesByRoot: byRoot,
      leavesOnOtherRoots: current.filter((c) => c.root !== signing).length,
      nodesAwaitingBundle: this.rotationStage() === "published"
        ? await this.#nodesAwaitingBundle(bundle.fingerprint, current)
        : [],
    };
  }

  async #nodesAwaitingBundle(fingerprint: string, current: CertificateRecord[]): Promise<string[]> {
    const enrolled = new Set(current.map((c) => c.node));
    const live = (await this.#options.liveNodes()).filter((n) => enrolled.has(n));
    const waiting = live.filter((n) => this.#bundleSeen.get(n) !== fingerprint);
    if (!this.#options.shareBundleFetches) return waiting.sort();
    // A node may have fetched it from another replica: that one recorded it in the store.
    const still: string[] = [];
    for (const node of waiting) {
      const held = await this.#store.getMeta(BUNDLE_META + node);
      if (held === fingerprint) this.#bundleSeen.set(node, held);
      else still.push(node);
    }
    return still.sort();
  }

  /**
   * Moves a rotation forward when its condition holds: from `published` to
   * `switched` once every live enrolled node has fetched the bundle that
   * trusts the new root; from `switched` to done once no current certificate
   * chains to the old root. Safe to call often; does nothing when steady.
   */
  async advanceRotation(): Promise<RotationStage> {
    const stage = this.rotationStage();
    if (stage === "steady") return stage;
    const gens = this.#authority.status();
    const active = gens.find((g) => g.stage === "active")!;
    const now = this.#iso();
    const current = await this.#store.listCertificates({ current: true, liveAt: now });
    if (stage === "published") {
      const waiting = await this.#nodesAwaitingBundle(
        this.#authority.bundle().fingerprint,
        current,
      );
      if (waiting.length > 0) return stage;
      const next = gens.filter((g) => g.stage === "published" && g.id > active.id).at(-1)!;
      await this.#authority.activate(next.id);
      this.#options.log.info("Root rotation: signing switched to the new CA", {
        generation: next.id,
      });
      this.events.trustChanged?.();
      return this.rotationStage();
    }
    const old = gens.filter((g) => g.stage === "published" && g.id < active.id);
    const oldRoots = new Set(old.map((g) => g.rootFingerprint));
    if (current.some((c) => oldRoots.has(c.root))) return stage;
    for (const g of old) await this.#authority.retire(g.id);
    this.#options.log.info("Root rotation complete: old root retired", {
      retired: old.map((g) => g.id),
    });
    this.events.trustChanged?.();
    return this.rotationStage();
  }
}
