/**
 * A gRPC echo backend for end-to-end tests: one generic unary method with
 * raw-byte messages that answers with the backend's name. What it does with
 * a call is chosen by the caller, per call, in the request payload (JSON), so
 * one set of backends serves every scenario:
 *
 * - `failOnce: true` with a `key`: the first call carrying that key, on any
 *   backend of the same {@link EchoFleet}, fails with UNAVAILABLE; later ones succeed.
 * - `failOn: [names]`: the backends named there always fail with UNAVAILABLE.
 * - `sleepMs`: the backend waits that long before answering.
 *
 * Every backend counts the calls it received, per `tag` (payload field), so a
 * test can see where calls went even when they failed.
 */
import * as grpc from "@grpc/grpc-js";

/** The method every echo backend serves. */
export const ECHO_METHOD = "/ironmesh.test.Echo/Call";

/** What a caller may ask of a backend, sent as the JSON request payload. */
export interface EchoRequest {
  /** Counted per tag by each backend ({@link EchoBackend.received}). */
  tag?: string;
  key?: string;
  failOnce?: boolean;
  failOn?: string[];
  sleepMs?: number;
}

const raw = (b: Buffer) => b;

/**
 * A running echo backend. It runs until the test process ends: shutting a
 * grpc-js server down while a client's connections wind down can crash Deno
 * 2.9.6 (a segfault in its HTTP/2).
 */
export interface EchoBackend {
  name: string;
  port: number;
  /** Calls received per tag (`""` for untagged calls). */
  received(tag?: string): number;
}

/** Backends that share the "seen keys" of `failOnce`, so a retry on another one still succeeds. */
export class EchoFleet {
  readonly #seen = new Set<string>();
  readonly backends: EchoBackend[] = [];

  /** Starts a backend named `name` on a free loopback port. */
  async start(name: string): Promise<EchoBackend> {
    const seen = this.#seen;
    const counts = new Map<string, number>();
    const server = new grpc.Server();
    server.addService({
      call: {
        path: ECHO_METHOD,
        requestStream: false,
        responseStream: false,
        requestSerialize: raw,
        requestDeserialize: raw,
        responseSerialize: raw,
        responseDeserialize: raw,
      },
    }, {
      call: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        let req: EchoRequest = {};
        try {
          req = call.request.length ? JSON.parse(call.request.toString()) : {};
        } catch {
          // A non-JSON payload is a plain echo request.
        }
        const tag = req.tag ?? "";
        counts.set(tag, (counts.get(tag) ?? 0) + 1);
        const unavailable = (why: string) =>
          callback({ code: grpc.status.UNAVAILABLE, details: `${name}: ${why}` });
        const answer = () => {
          if (req.failOn?.includes(name)) return unavailable("asked to fail");
          if (req.failOnce && req.key !== undefined && !seen.has(req.key)) {
            seen.add(req.key);
            return unavailable(`first call with key ${req.key}`);
          }
          callback(null, Buffer.from(name));
        };
        if (req.sleepMs) setTimeout(answer, req.sleepMs);
        else answer();
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(
        "127.0.0.1:0",
        grpc.ServerCredentials.createInsecure(),
        (e, p) => e ? reject(e) : resolve(p),
      )
    );
    const backend: EchoBackend = {
      name,
      port,
      received: (tag = "") => counts.get(tag) ?? 0,
    };
    this.backends.push(backend);
    return backend;
  }
}

/** The outcome of one call: the answering backend's name, or the status. */
export type EchoResult =
  | { ok: true; name: string; ms: number }
  | { ok: false; code: grpc.status; details: string; ms: number };

/** One call with a deadline (default 1 s: an xDS client is silent on failure). */
export function echo(
  client: grpc.Client,
  options: { request?: EchoRequest; metadata?: Record<string, string>; deadlineMs?: number } = {},
): Promise<EchoResult> {
  const metadata = new grpc.Metadata();
  for (const [k, v] of Object.entries(options.metadata ?? {})) metadata.set(k, v);
  const started = performance.now();
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      ECHO_METHOD,
      raw,
      raw,
      Buffer.from(JSON.stringify(options.request ?? {})),
      metadata,
      { deadline: Date.now() + (options.deadlineMs ?? 1_000) },
      (error: grpc.ServiceError | null, reply?: Buffer) => {
        const ms = performance.now() - started;
        resolve(
          error
            ? { ok: false, code: error.code, details: error.details, ms }
            : { ok: true, name: reply!.toString(), ms },
        );
      },
    );
  });
}
