/**
 * The standard gRPC health protocol (`grpc.health.v1.Health/Check`), as a pure
 * codec plus a grpc-js service definition. The agent's gRPC checks use it as a
 * client and the server answers it, so both ends share one definition. The
 * message types are declared inline rather than loaded from a `.proto` file,
 * so nothing is read from disk at run time and the compiled program is whole.
 */
import { Buffer } from "node:buffer";
import type { handleUnaryCall, MethodDefinition } from "@grpc/grpc-js";
import protobuf from "protobufjs";

/** `grpc.health.v1.HealthCheckResponse.ServingStatus`. */
export const SERVING_STATUS = {
  UNKNOWN: 0,
  SERVING: 1,
  NOT_SERVING: 2,
  SERVICE_UNKNOWN: 3,
} as const;
/** One value of {@link SERVING_STATUS}. */
export type ServingStatus = typeof SERVING_STATUS[keyof typeof SERVING_STATUS];

/** `grpc.health.v1.HealthCheckRequest`. */
export interface HealthCheckRequest {
  /** Service to check; `""` asks about the server as a whole. */
  service: string;
}

/** `grpc.health.v1.HealthCheckResponse`. */
export interface HealthCheckResponse {
  status: ServingStatus;
}

/** Full method path of `Check`, as it appears on the wire. */
export const HEALTH_CHECK_PATH = "/grpc.health.v1.Health/Check";

const root = protobuf.Root.fromJSON({
  nested: {
    grpc: {
      nested: {
        health: {
          nested: {
            v1: {
              nested: {
                HealthCheckRequest: { fields: { service: { type: "string", id: 1 } } },
                HealthCheckResponse: {
                  fields: { status: { type: "ServingStatus", id: 1 } },
                  nested: { ServingStatus: { values: SERVING_STATUS } },
                },
              },
            },
          },
        },
      },
    },
  },
});
const requestType = root.lookupType("grpc.health.v1.HealthCheckRequest");
const responseType = root.lookupType("grpc.health.v1.HealthCheckResponse");
const KNOWN_STATUSES: ReadonlySet<number> = new Set(Object.values(SERVING_STATUS));

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Encodes a `HealthCheckRequest`. */
export function encodeHealthCheckRequest(request: HealthCheckRequest): Buffer {
  return toBuffer(requestType.encode({ service: request.service }).finish());
}

/** Decodes a `HealthCheckRequest`; an absent service is `""`, as in proto3. */
export function decodeHealthCheckRequest(bytes: Uint8Array): HealthCheckRequest {
  const object = requestType.toObject(requestType.decode(bytes), { defaults: true });
  return { service: String(object.service ?? "") };
}

/** Encodes a `HealthCheckResponse`. */
export function encodeHealthCheckResponse(response: HealthCheckResponse): Buffer {
  return toBuffer(responseType.encode({ status: response.status }).finish());
}

/**
 * Decodes a `HealthCheckResponse`. A status this version does not know reads
 * as `UNKNOWN`, so a newer server can never make a check pass by accident.
 */
export function decodeHealthCheckResponse(bytes: Uint8Array): HealthCheckResponse {
  const object = responseType.toObject(responseType.decode(bytes), { defaults: true });
  const status = Number(object.status ?? 0);
  return { status: KNOWN_STATUSES.has(status) ? status as ServingStatus : SERVING_STATUS.UNKNOWN };
}

/** Name of a serving status, e.g. `NOT_SERVING`, for logs and check output. */
export function servingStatusName(status: number): string {
  const entry = Object.entries(SERVING_STATUS).find(([, value]) => value === status);
  return entry ? entry[0] : `UNRECOGNIZED(${status})`;
}

/**
 * Longest service name the server reads. Service names are short (`""`, a
 * service's name); a longer one is refused at once rather than echoed back in
 * an error whose trailer may exceed what the client accepts.
 */
export const MAX_HEALTH_SERVICE_NAME = 256;

/** A `HealthCheckRequest` as a server reads it: the request, or why it cannot be read. */
export type HealthCheckInput = HealthCheckRequest | { invalid: string };

/**
 * Decodes a request on the server side without throwing: grpc-js answers a
 * deserializer's exception with `INTERNAL`, while malformed input is the
 * caller's mistake, which the handler answers with `INVALID_ARGUMENT`.
 */
export function readHealthCheckRequest(bytes: Uint8Array): HealthCheckInput {
  let request: HealthCheckRequest;
  try {
    request = decodeHealthCheckRequest(bytes);
  } catch (error) {
    return { invalid: `Malformed HealthCheckRequest: ${(error as Error).message}` };
  }
  if (request.service.length > MAX_HEALTH_SERVICE_NAME) {
    return {
      invalid:
        `Service name of ${request.service.length} characters: at most ${MAX_HEALTH_SERVICE_NAME} are accepted`,
    };
  }
  return request;
}

/** What a server passes to `server.addService(healthServerDefinition, …)`. */
export type HealthServiceImplementation = {
  check: handleUnaryCall<HealthCheckInput, HealthCheckResponse>;
};

/**
 * The `grpc.health.v1.Health` service with its `Check` method, shaped as a
 * grpc-js `ServiceDefinition`: pass it to `makeGenericClientConstructor(def,
 * "grpc.health.v1.Health")` for a client, or to `server.addService(def, impl)`.
 */
export const healthServiceDefinition: {
  readonly check: MethodDefinition<HealthCheckRequest, HealthCheckResponse>;
} = {
  check: {
    path: HEALTH_CHECK_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: encodeHealthCheckRequest,
    requestDeserialize: decodeHealthCheckRequest,
    responseSerialize: encodeHealthCheckResponse,
    responseDeserialize: decodeHealthCheckResponse,
    originalName: "Check",
  },
};

/** {@link healthServiceDefinition} for a server: requests are read by {@link readHealthCheckRequest}. */
export const healthServerDefinition: {
  readonly check: MethodDefinition<HealthCheckInput, HealthCheckResponse>;
} = {
  check: {
    ...healthServiceDefinition.check,
    requestSerialize: (input: HealthCheckInput) =>
      encodeHealthCheckRequest("invalid" in input ? { service: "" } : input),
    requestDeserialize: readHealthCheckRequest,
  },
};
