/**
 * The agent's calls to the server's REST API, and nothing else: one request
 * each to register, heartbeat and deregister a node. Every call resolves to a
 * result the agent's loop can switch on; none throws, because each failure
 * has its own retry policy there.
 */
import type { FieldProblem } from "../core/errors.ts";
import { formatDuration } from "../core/duration.ts";
import { VERSION } from "../core/version.ts";
import type { HeartbeatBody, RegistrationBody } from "./registration.ts";

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
  /** A non-2xx answer; the problem is decoded, or made up from the status when the body is not one. */
  | { kind: "rejected"; status: number; problem: Problem }
  /** No answer: refused connection, DNS failure, timeout. */
  | { kind: "unreachable"; error: string };

/** The body of a successful registration. */
export interface RegistrationReply {
  node: unknown;
  instances: unknown[];
}

/** Options of {@link ServerApi}. */
export interface ServerApiOptions {
  /** Agent-role API token sent as `Authorization: Bearer`. Default: none. */
  token?: string | undefined;
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

/** Client of the node endpoints of the server's REST API. */
export class ServerApi {
  readonly server: string;
  #base: URL;
  #token: string | undefined;
  #timeoutMs: number;

  /** `server` is the base URL, e.g. `http://10.0.0.1:8080`; a path prefix is kept. */
  constructor(server: string, options: ServerApiOptions = {}) {
    this.server = server;
    this.#base = new URL(server.endsWith("/") ? server : server + "/");
    this.#token = options.token;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
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
    if (this.#token !== undefined) headers["authorization"] = `Bearer ${this.#token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    try {
      const response = await fetch(new URL(path, this.#base), {
        method,
        headers,
        signal,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await response.text();
      if (response.ok) return { kind: "ok", status: response.status, body: parseJson(text) as T };
      return {
        kind: "rejected",
        status: response.status,
        problem: parseProblem(response.status, response.statusText, text),
      };
    } catch (error) {
      if (timeout.signal.aborted) {
        return { kind: "unreachable", error: `No answer within ${formatDuration(timeoutMs)}` };
      }
      return { kind: "unreachable", error: error instanceof Error ? error.message : String(error) };
    } finally {
      clearTimeout(timer);
    }
  }
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
