/**
 * The agent's calls to the server's REST API, and nothing else: register,
 * heartbeat and deregister a node; enrol, renew and read the CA's roots.
 * Every call resolves to a result the agent's loops can switch on; none
 * throws, because each failure has its own retry policy there. TLS clients
 * come from a {@link ClientSource} per request, so a renewed certificate or a
 * new trust bundle applies from the next call on.
 */
import type { FieldProblem } from "../core/errors.ts";
import { formatDuration } from "../core/duration.ts";
import { VERSION } from "../core/version.ts";
import type { HeartbeatBody, RegistrationBody } from "./registration.ts";
import type { ClientSource } from "./tls_clients.ts";

/** An RFC 9457 problem document, as the server sends errors. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  problems: FieldProblem[];
}

/** The outcome of one API call. */
export type ApiResult<T> =
  /** A 2xx answer with its decoded body (`null` when empty). */
  | { kind: "ok"; status: number; body: T }
  /**
   * A non-2xx answer; the problem is decoded, or made up from the status when
   * the body is not one. `retryAfterMs` is the `Retry-After` header, when sent.
   */
  | { kind: "rejected"; status: number; problem: Problem; retryAfterMs?: number }
  /** No answer: refused connection, DNS failure, timeout. */
  | { kind: "unreachable"; error: string };

/** The body of a successful registration. */
export interface RegistrationReply {
  node: unknown;
  instances: unknown[];
}

/** The body of `POST /v1/ca/enrol`. */
export interface EnrolBody {
  /** The join token, as given to the agent. */
  token: string;
  /** PEM PKCS#10 request for `CN=<node>` and the SPIFFE ID as URI SAN. */
  csr: string;
  node: string;
}

/** The body of `POST /v1/ca/renew`. */
export interface RenewBody {
  csr: string;
}

/** Options of {@link ServerApi}. */
export interface ServerApiOptions {
  /**
   * Gives the TLS client of each request (trusted roots, client certificate).
   * Default: none, the runtime's default client (system roots, no client
   * certificate); for plain-HTTP tests.
   */
  clients?: ClientSource;
  /** Time after which a call gives up, in milliseconds. Default: 10 000. */
  timeoutMs?: number;
}

/** Options of one call. */
export interface CallOptions {
  /** Aborts the call (the agent's shutdown). */
  signal?: AbortSignal;
  /** Overrides {@link ServerApiOptions.timeoutMs} for this call. */
  timeoutMs?: number;
}

/** Client of the node and CA endpoints of the server's REST API. */
export class ServerApi {
  readonly server: string;
  #base: URL;
  #clients: ClientSource | undefined;
  #timeoutMs: number;

  /** `server` is the base URL, e.g. `https://10.0.0.1:8443`; a path prefix is kept. */
  constructor(server: string, options: ServerApiOptions = {}) {
    this.server = server;
    this.#base = new URL(server.endsWith("/") ? server : server + "/");
    this.#clients = options.clients;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
  }

  /** `GET /v1/ca/roots`: the trust bundle; public. */
  roots(options: CallOptions = {}): Promise<ApiResult<unknown>> {
    return this.#call("GET", "v1/ca/roots", undefined, options);
  }

  /** `POST /v1/ca/enrol`: trades a join token and a CSR for a certificate; no client certificate. */
  enrol(body: EnrolBody, options: CallOptions = {}): Promise<ApiResult<unknown>> {
    return this.#call("POST", "v1/ca/enrol", body, options);
  }

  /** `POST /v1/ca/renew`: a new certificate for the one presented over mTLS. */
  renew(body: RenewBody, options: CallOptions = {}): Promise<ApiResult<unknown>> {
    return this.#call("POST", "v1/ca/renew", body, options);
  }

  /** `PUT /v1/nodes/{node}/registration`: the node's whole state. */
  register(
    node: string,
    body: RegistrationBody,
    options: CallOptions = {},
  ): Promise<ApiResult<RegistrationReply>> {
    return this.#call("PUT", `v1/nodes/${encodeURIComponent(node)}/registration`, body, options);
  }

  /** `POST /v1/nodes/{node}/heartbeat`: liveness plus every check's status. */
  heartbeat(
    node: string,
    body: HeartbeatBody,
    options: CallOptions = {},
  ): Promise<ApiResult<unknown>> {
    return this.#call("POST", `v1/nodes/${encodeURIComponent(node)}/heartbeat`, body, options);
  }

  /** `DELETE /v1/nodes/{node}`: removes the node and its instances. */
  deregister(node: string, options: CallOptions = {}): Promise<ApiResult<unknown>> {
    return this.#call("DELETE", `v1/nodes/${encodeURIComponent(node)}`, undefined, options);
  }

  async #call<T>(
    method: string,
    path: string,
    body: unknown,
    options: CallOptions,
  ): Promise<ApiResult<T>> {
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), timeoutMs);
    const signal = options.signal
      ? AbortSignal.any([options.signal, timeout.signal])
      : timeout.signal;
    const headers: Record<string, string> = {
      "accept": "application/json, application/problem+json",
      "user-agent": `ironmesh-agent/${VERSION}`,
    };
    if (body !== undefined) headers["content-type"] = "application/json";
    let lease;
    try {
      lease = this.#clients?.acquire();
    } catch (error) {
      clearTimeout(timer);
      return { kind: "unreachable", error: describeError(error) };
    }
    try {
      const response = await fetch(new URL(path, this.#base), {
        method,
        headers,
        signal,
        ...(lease ? { client: lease.client } : {}),
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await response.text();
      if (response.ok) return { kind: "ok", status: response.status, body: parseJson(text) as T };
      const retryAfterMs = parseRetryAfter(response.headers.get("retry-after"), Date.now());
      return {
        kind: "rejected",
        status: response.status,
        problem: parseProblem(response.status, response.statusText, text),
        ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      };
    } catch (error) {
      if (timeout.signal.aborted) {
        return { kind: "unreachable", error: `No answer within ${formatDuration(timeoutMs)}` };
      }
      return { kind: "unreachable", error: describeError(error) };
    } finally {
      clearTimeout(timer);
      // Only after the body was read: the client must not close under a live response.
      lease?.release();
    }
  }
}

/**
 * The message of a failed fetch with its cause: Deno says only "fetch failed"
 * and puts the reason (e.g. "invalid peer certificate: UnknownIssuer") in
 * `cause`, which is what an operator needs to see.
 */
function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? error.cause.message : undefined;
  return cause !== undefined && cause !== error.message
    ? `${error.message}: ${cause}`
    : error.message;
}

/**
 * Reads a `Retry-After` header: delay-seconds or an HTTP date, in
 * milliseconds from `now`; `undefined` when absent or unreadable.
 */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function parseJson(text: string): unknown {
  if (text === "") return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * Reads a problem document leniently: a proxy in front of the server may
 * answer with HTML or plain text, and the status must still reach the log.
 */
export function parseProblem(status: number, statusText: string, text: string): Problem {
  const json = parseJson(text);
  const object = typeof json === "object" && json !== null ? json as Record<string, unknown> : {};
  const str = (value: unknown, fallback: string) => typeof value === "string" ? value : fallback;
  const problems = Array.isArray(object.problems)
    ? object.problems.filter((p): p is FieldProblem =>
      typeof p === "object" && p !== null && typeof p.pointer === "string" &&
      typeof p.message === "string"
    ).map((p) => ({ pointer: p.pointer, message: p.message }))
    : [];
  const fallbackDetail = typeof json === "string" ? json.slice(0, 200) : "";
  return {
    type: str(object.type, "about:blank"),
    title: str(object.title, statusText || `HTTP ${status}`),
    status,
    detail: str(object.detail, fallbackDetail),
    problems,
  };
}
