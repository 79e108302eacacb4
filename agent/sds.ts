/**
 * The agent's part of the sidecar's secrets (SDS): Envoy asks its ADS stream
 * for the secrets `default` (its workload certificate and key) and `ROOTCA`
 * (the trust bundle). The agent answers `default` itself, from the key it
 * generated on this host and the certificate the server signed, so the
 * private key never leaves the host and the server never sees the name; the
 * relay asks the server for the rest (`ROOTCA`).
 *
 * The relay's sessions (`xds_relay_sotw.ts`, `xds_relay_delta.ts`) treat
 * `default` as one more resource they hold: every SDS response to Envoy
 * carries every secret it subscribed to that the relay knows, `default` and
 * `ROOTCA` together, with a version made of both. That is what Envoy's
 * unified xDS mux expects of a state-of-the-world response: its WatchMap
 * tells a watch whose resource is missing from a response that the resource
 * was removed (`source/common/config/watch_map.cc`, `WatchMap::onConfigUpdate`:
 * "If this watch previously had some resources, it means this update is
 * removing all of this watch's resources"), so a response with `default`
 * alone would take `ROOTCA` away, and the reverse (issue 17, item 13).
 *
 * The secret itself is built with the rest of the Envoy configuration, in
 * `core/workload_secret.ts`.
 */
import { WORKLOAD_CERT_SECRET } from "../core/sds_names.ts";
import { tlsCertificateSecret, type WorkloadCertificate } from "../core/workload_secret.ts";
import { SDS_TYPE_URL } from "../core/xds_type_urls.ts";

/** A resource the agent serves itself, never asked of the server. */
export interface LocalResource {
  name: string;
  version: string;
  /** The resource as an encoded `google.protobuf.Any`. */
  any: Uint8Array;
}

/** Whether the agent answers `name` of `typeUrl` itself. */
export function isLocalResource(typeUrl: string, name: string): boolean {
  return typeUrl === SDS_TYPE_URL && name === WORKLOAD_CERT_SECRET;
}

/** The resources the agent serves itself: the workload certificate, from its current identity. */
export class LocalResources {
  readonly #certificate: () => WorkloadCertificate;
  #cached: LocalResource | undefined;

  /** `certificate` gives the agent's current certificate and key. */
  constructor(certificate: () => WorkloadCertificate) {
    this.#certificate = certificate;
  }

  /** The local resource `name` of `typeUrl`, or `undefined` when it is the server's. */
  get(typeUrl: string, name: string): LocalResource | undefined {
    if (!isLocalResource(typeUrl, name)) return undefined;
    const cert = this.#certificate();
    if (this.#cached?.version !== cert.version) {
      this.#cached = {
        name: WORKLOAD_CERT_SECRET,
        version: cert.version,
        any: tlsCertificateSecret(WORKLOAD_CERT_SECRET, cert),
      };
    }
    return this.#cached;
  }
}
