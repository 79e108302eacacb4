import * as grpc from "@grpc/grpc-js";
import { formatHostPort, type HostPort } from "../core/address.ts";
import {
  healthServerDefinition,
  type HealthServiceImplementation,
  SERVING_STATUS,
} from "../core/grpc_health.ts";
import { type AdsServer, adsServiceDefinition } from "./ads_server.ts";

/** The running gRPC listener. */
export interface GrpcListener {
  /** The address actually bound (port 0 resolved). */
  address: HostPort;
  /** Stops accepting, lets open calls finish for up to `graceMs`, then cuts them. */
  stop(graceMs?: number): Promise<void>;
}

/** Options of {@link startGrpcServer}. */
export interface GrpcOptions {
  /** Answered by the health service. */
  isServing: () => boolean;
  /** The ADS server to expose. */
  ads?: AdsServer;
  /** Serve mTLS with these certificates (client certificates required); plaintext when absent. */
  tls?: MeshCertificates;
}

/**
 * The mesh certificates of a gRPC port, swappable at run time: grpc-js reads
 * them through a certificate provider, so a renewed server certificate or a
 * rotated trust bundle applies to new connections without a restart.
 */
export class MeshCertificates implements grpc.experimental.CertificateProvider {
  #ca: grpc.experimental.CaCertificateUpdate;
  #identity: grpc.experimental.IdentityCertificateUpdate;
  readonly #caListeners = new Set<grpc.experimental.CaCertificateUpdateListener>();
  readonly #identityListeners = new Set<grpc.experimental.IdentityCertificateUpdateListener>();

  constructor(material: { key: string; cert: string; ca: string }) {
    this.#ca = { caCertificate: Buffer.from(material.ca) };
    this.#identity = {
      certificate: Buffer.from(material.cert),
      privateKey: Buffer.from(material.key),
    };
  }

  /** Replaces the material; listeners (grpc-js) pick it up for new handshakes. */
  update(material: { key: string; cert: string; ca: string }): void {
    this.#ca = { caCertificate: Buffer.from(material.ca) };
    this.#identity = {
      certificate: Buffer.from(material.cert),
      privateKey: Buffer.from(material.key),
    };
    for (const l of this.#caListeners) l(this.#ca);
    for (const l of this.#identityListeners) l(this.#identity);
  }

  addCaCertificateListener(listener: grpc.experimental.CaCertificateUpdateListener): void {
    this.#caListeners.add(listener);
    // grpc-js registers its listener before the code that applies the value: deliver the
    // first value a tick later, or the port would start without certificates.
    queueMicrotask(() => this.#caListeners.has(listener) && listener(this.#ca));
  }
  removeCaCertificateListener(listener: grpc.experimental.CaCertificateUpdateListener): void {
    this.#caListeners.delete(listener);
  }
  addIdentityCertificateListener(
    listener: grpc.experimental.IdentityCertificateUpdateListener,
  ): void {
    this.#identityListeners.add(listener);
    queueMicrotask(() => this.#identityListeners.has(listener) && listener(this.#identity));
  }
  removeIdentityCertificateListener(
    listener: grpc.experimental.IdentityCertificateUpdateListener,
  ): void {
    this.#identityListeners.delete(listener);
  }
}

/**
 * Starts a gRPC port: the standard `grpc.health.v1` health service (for load
 * balancers and `grpc_health_probe`) and, when given, ADS.
 */
export function startGrpcServer(address: HostPort, options: GrpcOptions): Promise<GrpcListener> {
  const server = new grpc.Server({
    // Proxies hold their streams for hours; keepalives find dead peers.
    "grpc.keepalive_time_ms": 30_000,
    "grpc.keepalive_timeout_ms": 10_000,
    "grpc.max_receive_message_length": 4 * 1024 * 1024,
  });
  const health: HealthServiceImplementation = {
    check: (call, callback) => {
      if ("invalid" in call.request) {
        callback({ code: grpc.status.INVALID_ARGUMENT, details: call.request.invalid });
        return;
      }
      if (call.request.service !== "" && call.request.service !== "ironmesh") {
        callback({
          code: grpc.status.NOT_FOUND,
          details: `Unknown service "${call.request.service}"`,
        });
        return;
      }
      callback(null, {
        status: options.isServing() ? SERVING_STATUS.SERVING : SERVING_STATUS.NOT_SERVING,
      });
    },
  };
  server.addService(healthServerDefinition, health);
  if (options.ads) server.addService(adsServiceDefinition, options.ads.handlers());
  const credentials = options.tls
    ? grpc.experimental.createCertificateProviderServerCredentials(options.tls, options.tls, true)
    : grpc.ServerCredentials.createInsecure();
  return new Promise((resolve, reject) => {
    server.bindAsync(formatHostPort(address), credentials, (error, port) => {
      if (error) {
        reject(error);
        return;
      }
      resolve({
        address: { host: address.host, port },
        stop: (graceMs = 5_000) =>
          new Promise<void>((done) => {
            const force = setTimeout(() => {
              server.forceShutdown();
              done();
            }, graceMs);
            server.tryShutdown(() => {
              clearTimeout(force);
              done();
            });
          }),
      });
    });
  });
}
