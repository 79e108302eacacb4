import * as grpc from "@grpc/grpc-js";
import type { HostPort } from "../core/address.ts";
import type { ConnectionLimits } from "../core/connection_limits.ts";
import {
  healthServerDefinition,
  type HealthServiceImplementation,
  SERVING_STATUS,
} from "../core/grpc_health.ts";
import { type AdsServer, adsServiceDefinition } from "./ads_server.ts";
import { type GrpcTlsMaterial, listenGrpc } from "./grpc_listener.ts";

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
  /** Header deadline, idle timeout and cap of the port (`grpc_listener.ts`). */
  limits: ConnectionLimits;
}

/**
 * The mesh certificates of a gRPC port, swappable at run time: a renewed
 * server certificate or a rotated trust bundle applies to new connections
 * without a restart.
 */
export class MeshCertificates {
  #material: GrpcTlsMaterial;
  readonly #listeners = new Set<(material: GrpcTlsMaterial) => void>();

  constructor(material: GrpcTlsMaterial) {
    this.#material = { ...material };
  }

  /** The material new handshakes use. */
  get current(): GrpcTlsMaterial {
    return this.#material;
  }

  /** Replaces the material; the ports serving it use it for new handshakes. */
  update(material: GrpcTlsMaterial): void {
    this.#material = { ...material };
    for (const listener of this.#listeners) listener(this.#material);
  }

  /** Calls `listener` with every later material; returns the function that stops it. */
  subscribe(listener: (material: GrpcTlsMaterial) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

/**
 * Starts a gRPC port: the standard `grpc.health.v1` health service (for load
 * balancers and `grpc_health_probe`) and, when given, ADS.
 */
export async function startGrpcServer(
  address: HostPort,
  options: GrpcOptions,
): Promise<GrpcListener> {
  const server = new grpc.Server({
    // Counts open calls, not pings: a proxy's ADS stream keeps its connection.
    "grpc.max_connection_idle_ms": options.limits.idleTimeoutMs,
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
  const port = await listenGrpc(server, address, {
    limits: options.limits,
    ...(options.tls ? { tls: options.tls.current } : {}),
  });
  const unsubscribe = options.tls?.subscribe((material) => port.reload(material));
  return {
    address: port.address,
    stop: (graceMs = 5_000) =>
      new Promise<void>((done) => {
        unsubscribe?.();
        port.close();
        const force = setTimeout(() => {
          server.forceShutdown();
          port.destroyAll();
          done();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          port.destroyAll();
          done();
        });
      }),
  };
}
