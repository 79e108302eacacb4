/**
 * Keeping the agent's certificate and trust bundle current while it runs:
 * renew the certificate before it expires (or at once when the server asks,
 * e.g. during a root rotation), and fetch the trust bundle again when a
 * heartbeat reports a different fingerprint. One loop does both, so the
 * files in the identity directory and the TLS client change one at a time.
 */
import type { Clock } from "../core/clock.ts";
import { formatDuration } from "../core/duration.ts";
import type { Logger } from "../core/log.ts";
import { backoffDelay } from "./backoff.ts";
import { acceptIssued, expiredMessage, rootsReplySchema } from "./enrol.ts";
import { type Identity, saveBundle, saveIdentity } from "./identity.ts";
import { createCsr, generateKeyPair, parseCertificates, privateKeyPem } from "./pki.ts";
import type { ApiResult, ServerApi } from "./server_api.ts";
import type { ClientPool, TlsMaterial } from "./tls_clients.ts";
import { Wakeup } from "./wait.ts";

/**
 * When to renew: a uniformly random point between 50% and 80% of the
 * certificate's lifetime. Starting at half the lifetime leaves at least 20%
 * of it (about 5 h of a 24 h certificate) for retries when the server is
 * down; the random spread keeps a fleet enrolled together (a new rack, an
 * autoscaling group) from renewing together, and each renewal draws again so
 * the spread persists. Istio and Consul schedule renewals the same way.
 *
 * The lifetime runs from {@link lifetimeStart}, not from notBefore alone:
 * the server backdates notBefore (a minute, for peers whose clocks lag), and
 * for a short certificate that minute would put the whole window in the past
 * and make every renewal due at once.
 */
export function renewalTime(
  window: { start: number; notAfter: number },
  random: () => number,
): number {
  const lifetime = window.notAfter - window.start;
  return window.start + Math.round(lifetime * (0.5 + 0.3 * random()));
}

/**
 * When the certificate's usable life began: when the agent received it if it
 * knows (it does for one it obtained while running), else notBefore, which
 * after a restart errs towards renewing early.
 */
export function lifetimeStart(identity: Identity): number {
  return Math.max(identity.leaf.notBefore, identity.receivedAt ?? -Infinity);
}

function window(identity: Identity): { start: number; notAfter: number } {
  return { start: lifetimeStart(identity), notAfter: identity.leaf.notAfter };
}

/** The TLS material of an identity: trust its bundle, present its certificate. */
export function tlsMaterial(identity: Identity): TlsMaterial {
  return { caPem: identity.bundlePem, certPem: identity.certPem, keyPem: identity.keyPem };
}

/**
 * Longest single wait. Timers overflow past 24.8 days (a 90-day certificate
 * renews later than that) and do not count time a host spent suspended, so
 * the loop wakes up at least this often and looks at the clock again.
 */
const MAX_WAIT_MS = 60_000;
/** Below this much time left, retrying sooner than the backoff says stops helping. */
const MIN_RETRY_MS = 200;
/**
 * Least time between a renewal and the next: a server that issued a
 * certificate already inside its renewal window must not get a storm.
 */
const MIN_RENEW_GAP_MS = 1_000;

/** What a heartbeat answer says about the CA (`ca` in its body). */
export interface HeartbeatCa {
  bundleFingerprint?: unknown;
  renew?: unknown;
}

/** Options of {@link CertificateRotation}. */
export interface RotationOptions {
  dataDir: string;
  /** The API, built on `pool`. */
  api: ServerApi;
  /** The pool whose material changes with the identity. */
  pool: ClientPool;
  /** The identity to start from. */
  identity: Identity;
  log: Logger;
  clock: Clock;
  random: () => number;
  /** Called after each change of certificate or bundle, once it is saved and in use. */
  onChange?: (identity: Identity) => void | Promise<void>;
}

/** Renews the certificate and refreshes the trust bundle; see the module comment. */
export class CertificateRotation {
  #options: RotationOptions;
  #identity: Identity;
  #wakeup = new Wakeup();
  #renewAt: number;
  #renewWanted = false;
  #attempt = 0;
  #lastRenewal = -Infinity;
  #bundleWanted: string | undefined;
  #bundleAt = 0;
  #bundleAttempt = 0;

  constructor(options: RotationOptions) {
    this.#options = options;
    this.#identity = options.identity;
    this.#renewAt = renewalTime(window(options.identity), options.random);
  }

  /** The identity in use now. */
  get identity(): Identity {
    return this.#identity;
  }

  /** Renews as soon as possible. */
  requestRenewal(): void {
    this.#renewWanted = true;
    this.#wakeup.notify();
  }

  /**
   * Acts on the `ca` part of a heartbeat answer sent at `sentAt` (ms since
   * the epoch): a new bundle fingerprint fetches the bundle, `renew: true`
   * renews. A `renew` asked by a heartbeat that left before the latest
   * renewal concerns the old certificate and is ignored, or every renewal
   * during a rotation would be followed by a second one.
   */
  noteHeartbeat(ca: HeartbeatCa | undefined, sentAt: number): void {
    if (ca === undefined || ca === null || typeof ca !== "object") return;
    const fp = ca.bundleFingerprint;
    if (
      typeof fp === "string" && fp !== "" && fp !== this.#identity.bundleFingerprint &&
      fp !== this.#bundleWanted
    ) {
      this.#options.log.info("Trust bundle changed on the server; fetching it", {
        bundleFingerprint: fp,
        previous: this.#identity.bundleFingerprint,
      });
      this.#bundleWanted = fp;
      this.#bundleAt = this.#options.clock.now();
      this.#bundleAttempt = 0;
      this.#wakeup.notify();
    }
    if (ca.renew === true && sentAt >= this.#lastRenewal && !this.#renewWanted) {
      this.#options.log.info("Server asked for renewal", { node: this.#identity.node });
      this.requestRenewal();
    }
  }

  /** Runs until `signal` aborts; never rejects. */
  async run(signal: AbortSignal): Promise<void> {
    const { clock } = this.#options;
    this.#logSchedule();
    while (!signal.aborted) {
      const now = clock.now();
      if (this.#bundleWanted !== undefined && now >= this.#bundleAt) {
        await this.#refreshBundle(signal);
        continue;
      }
      if (this.#renewWanted || now >= this.#renewAt) {
        this.#renewWanted = false;
        await this.#renew(signal);
        continue;
      }
      const next = this.#bundleWanted === undefined
        ? this.#renewAt
        : Math.min(this.#renewAt, this.#bundleAt);
      await this.#wakeup.wait(Math.min(Math.max(0, next - now), MAX_WAIT_MS), signal);
    }
  }

  #logSchedule(): void {
    const { leaf } = this.#identity;
    this.#options.log.info("Certificate renewal scheduled", {
      node: this.#identity.node,
      serial: leaf.serial,
      notAfter: new Date(leaf.notAfter).toISOString(),
      renewAt: new Date(this.#renewAt).toISOString(),
    });
  }

  async #use(identity: Identity): Promise<void> {
    this.#options.pool.update(tlsMaterial(identity));
    this.#identity = identity;
    try {
      await this.#options.onChange?.(identity);
    } catch (error) {
      this.#options.log.error("Cannot record the new certificate", { error });
    }
  }

  async #renew(signal: AbortSignal): Promise<void> {
    const { api, clock, log, random, dataDir } = this.#options;
    const current = this.#identity;
    let result: ApiResult<unknown> | undefined;
    let failure: string | undefined;
    try {
      const keys = await generateKeyPair();
      const keyPem = await privateKeyPem(keys.privateKey);
      const csr = await createCsr(keys, current.node, current.identity);
      result = await api.renew({ csr }, { signal });
      if (signal.aborted) return;
      if (result.kind === "ok") {
        const renewed = await acceptIssued(result.body, {
          keys,
          keyPem,
          node: current.node,
          server: current.server,
          receivedAt: clock.now(),
        });
        // Saved before use: the files on disk are never older than the
        // certificate the server has seen, so a restart resumes with it.
        await saveIdentity(dataDir, renewed);
        this.#lastRenewal = clock.now();
        await this.#use(renewed);
        if (renewed.bundleFingerprint === this.#bundleWanted) this.#bundleWanted = undefined;
        this.#attempt = 0;
        this.#renewAt = Math.max(
          renewalTime(window(renewed), random),
          clock.now() + MIN_RENEW_GAP_MS,
        );
        log.info("Certificate renewed", {
          node: renewed.node,
          identity: renewed.identity,
          serial: renewed.leaf.serial,
          notAfter: new Date(renewed.leaf.notAfter).toISOString(),
          renewAt: new Date(this.#renewAt).toISOString(),
        });
        return;
      }
    } catch (error) {
      // A refused answer, a full disk, a PEM the TLS stack rejects: the
      // current certificate still works, so retry like any failure.
      failure = error instanceof Error ? error.message : String(error);
    }
    this.#scheduleRetry(result ?? { kind: "unreachable", error: failure ?? "" }, failure);
  }

  #scheduleRetry(result: ApiResult<unknown>, failure: string | undefined): void {
    const { clock, log, random } = this.#options;
    const { leaf, node, identity } = this.#identity;
    const now = clock.now();
    const expired = now >= leaf.notAfter;
    const lifetime = leaf.notAfter - lifetimeStart(this.#identity);
    const baseMs = Math.min(1_000, Math.max(50, lifetime / 100));
    const capMs = expired ? 60_000 : Math.min(60_000, Math.max(baseMs, lifetime / 20));
    let delay = backoffDelay(this.#attempt, { baseMs, capMs }, random);
    const rateLimited = result.kind === "rejected" && result.status === 429;
    if (rateLimited && result.retryAfterMs !== undefined) delay = result.retryAfterMs;
    this.#attempt++;
    const left = leaf.notAfter - now;
    if (!expired && delay >= left) {
      // Waiting as told would let the certificate lapse, and an expired
      // certificate cannot renew itself: try again while it still can.
      if (left > 2 * MIN_RETRY_MS) delay = Math.floor(left / 2);
      log.error("Certificate is about to expire and is not renewed yet", {
        node,
        notAfter: new Date(leaf.notAfter).toISOString(),
        expiresIn: formatDuration(Math.max(0, left)),
        retryIn: formatDuration(delay),
      });
    }
    this.#renewAt = now + delay;
    const fields: Record<string, unknown> = {
      node,
      attempt: this.#attempt,
      retryIn: formatDuration(delay),
      notAfter: new Date(leaf.notAfter).toISOString(),
    };
    if (result.kind === "rejected") {
      fields.status = result.status;
      fields.detail = result.problem.detail;
    } else if (result.kind === "unreachable") {
      fields.error = result.error;
    }
    if (failure !== undefined) fields.error = failure;
    if (expired) {
      log.error("Certificate expired", {
        ...fields,
        fix: expiredMessage(node, leaf.notAfter, identity),
      });
    } else if (failure !== undefined) {
      log.error("Certificate renewal failed", fields);
    } else if (rateLimited) {
      log.warn("Certificate renewal rate-limited by the server", fields);
    } else if (result.kind === "rejected" && result.status < 500) {
      log.error("Certificate renewal refused", fields);
    } else {
      log.warn("Certificate renewal failed", fields);
    }
  }

  async #refreshBundle(signal: AbortSignal): Promise<void> {
    const { api, clock, log, random, dataDir } = this.#options;
    const wanted = this.#bundleWanted;
    const result = await api.roots({ signal });
    if (signal.aborted) return;
    let error: string;
    if (result.kind === "ok") {
      const parsed = rootsReplySchema.safeParse(result.body);
      if (parsed.success) {
        try {
          const roots = parseCertificates(parsed.data.bundlePem, "trust bundle from the server");
          const bundlePem = parsed.data.bundlePem.endsWith("\n")
            ? parsed.data.bundlePem
            : parsed.data.bundlePem + "\n";
          const updated: Identity = {
            ...this.#identity,
            bundlePem,
            bundleFingerprint: parsed.data.bundleFingerprint,
          };
          await saveBundle(dataDir, updated);
          await this.#use(updated);
          if (this.#bundleWanted === wanted) this.#bundleWanted = undefined;
          this.#bundleAttempt = 0;
          log.info("Trust bundle updated", {
            bundleFingerprint: updated.bundleFingerprint,
            roots: roots.length,
          });
          return;
        } catch (e) {
          error = e instanceof Error ? e.message : String(e);
        }
      } else {
        error = "The answer of GET /v1/ca/roots is not a root list";
      }
    } else if (result.kind === "rejected") {
      error = `${result.status} ${result.problem.title}: ${result.problem.detail}`;
    } else {
      error = result.error;
    }
    const delay = backoffDelay(this.#bundleAttempt++, { baseMs: 500, capMs: 30_000 }, random);
    this.#bundleAt = clock.now() + delay;
    log.warn("Trust bundle refresh failed", {
      error,
      attempt: this.#bundleAttempt,
      retryIn: formatDuration(delay),
    });
  }
}
