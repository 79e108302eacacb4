import * as grpc from "@grpc/grpc-js";
import { formatHostPort, type HostPort } from "../core/address.ts";
import {
  healthServiceDefinition,
  type HealthServiceImplementation,
  SERVING_STATUS,
} from "../core/grpc_health.ts";

/** The running gRPC listener. */
export interface GrpcListener {
  /** The address actually bound (port 0 resolved). */
  address: HostPort;
  /** Stops accepting, lets open calls finish for up to `graceMs`, then cuts them. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts the gRPC port. Today it serves the standard `grpc.health.v1`
 * health service (so load balancers and `grpc_health_probe` work); the xDS
 * and agent-channel services join it here.
 */
export function startGrpcServer(
  address: HostPort,
  isServing: () => boolean,
): Promise<GrpcListener> {
  const server = new grpc.Server();
  const health: HealthServiceImplementation = {
    check: (call, callback) => {
      if (call.request.service !== "" && call.request.service !== "ironmesh") {
        callback({
          code: grpc.status.NOT_FOUND,
          details: `Unknown service "${call.request.service}"`,
        });
        return;
      }
      callback(null, {
        status: isServing() ? SERVING_STATUS.SERVING : SERVING_STATUS.NOT_SERVING,
      });
    },
  };
  server.addService(healthServiceDefinition, health);
  return new Promise((resolve, reject) => {
    server.bindAsync(
      formatHostPort(address),
      grpc.ServerCredentials.createInsecure(),
      (error, port) => {
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
      },
    );
  });
}
