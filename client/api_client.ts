/**
 * The one client of the Ironmesh REST API: the CLI verbs, the end-to-end
 * tests and the agent (`agent/server_api.ts`, over its own TLS clients) all
 * call through it. It speaks the server's error vocabulary back: a problem
 * document (RFC 9457) becomes the error class of its kind, read through the
 * one table in `core/errors.ts`, so callers handle a 404 from the server and
 * a local `NotFoundError` alike.
 */
import {
  errorOfKind,
  type FieldProblem,
  InvalidError,
  kindOfAnswer,
  type MeshError,
  type Problem,
  UnavailableError,
} from "../core/errors.ts";
import { formatDuration } from "../core/duration.ts";

/** Options of {@link ApiClient}. */
export interface ApiClientOptions {
  /** Base URL of the server, e.g. `http://127.0.0.1:15080`; a path prefix is kept. */
  server: string;
  /** Bearer token sent with every request; none by default. */
  token?: string;
  /**
   * The `fetch` to use; `globalThis.fetch` by default. It may read the body
   * before it resolves (the agent does, to release its TLS client).
   */
  fetch?: typeof fetch;
  /** Headers sent with every request, e.g. `User-Agent`; none by default. */
  headers?: Record<string, string>;
  /** Time after which a request gives up, in milliseconds; no limit by default. */
  timeoutMs?: number;
  /**
   * Called before an idempotent request is sent again because the server
   * closed the connection under it (see {@link RequestOptions.idempotent}),
   * so that the resend goes out on a fresh connection, not on another stale
   * one from the same pool. None by default: the runtime's own pool already
   * dropped the connection that failed.
   */
  onStaleConnection?: () => void;
}

/** Options of {@link ApiClient.request} and {@link ApiClient.call}. */
export interface RequestOptions {
  /** Sent as JSON; no body by default. */
  body?: unknown;
  /** Extra headers, e.g. `If-Match`; none by default. */
  headers?: Record<string, string>;
  /** Query parameters; `undefined` values are left out. None by default. */
  query?: Record<string, string | number | boolean | undefined>;
  /** Aborts the request; none by default. */
  signal?: AbortSignal;
  /** Overrides {@link ApiClientOptions.timeoutMs} for this request. */
  timeoutMs?: number;
  /**
   * Whether the request may be sent twice. A keep-alive connection the server
   * closes while the request is on its way fails the request through no fault
   * of either side; an idempotent request is then sent once more. Default:
   * true for GET, HEAD, PUT, DELETE and OPTIONS (RFC 9110, section 9.2.2),
   * false otherwise; a POST that is idempotent by contract (a heartbeat)
   * says so here.
   */
  idempotent?: boolean;
}

/** One page of a list endpoint. */
export interface Page<T> {
  items: T[];
  /** Cursor of the next page, or `null` (or absent) on the last page. */
  next?: string | null;
}

/** The server answered a status that has no kind of its own (e.g. 500, 502, 415). */
export class ServerError extends UnavailableError {
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

/** A problem document as received: read leniently, with `problems` always present. */
export type ReceivedProblem = Required<Problem>;

/** A non-2xx answer, decoded. */
export interface Rejection {
  kind: "rejected";
  status: number;
  /** The problem document, or one made up from the status when the body is not one. */
  problem: ReceivedProblem;
  /** The error class of the answer's kind ({@link ServerError} for a status of no kind). */
  error: MeshError;
  /** The `Retry-After` header in milliseconds, when sent. */
  retryAfterMs?: number;
}

/** The outcome of one call, for callers that switch on it rather than catch. */
export type ApiResult<T> =
  /** A 2xx answer with its decoded body (`null` when empty, the text when not JSON). */
  | { kind: "ok"; status: number; body: T }
  | Rejection
  /** No answer: refused connection, DNS failure, TLS failure, timeout. */
  | { kind: "unreachable"; error: string };

/** A typed client for the `/v1` REST API. */
export class ApiClient {
  /** The server's base URL, as given, for messages. */
  readonly server: string;
  #base: URL;
  #token: string | undefined;
  #fetch: typeof fetch;
  #headers: Record<string, string>;
  #timeoutMs: number | undefined;
  #onStaleConnection: (() => void) | undefined;

  /** Checks the server URL now, so that a typo fails before any request. */
  constructor(options: ApiClientOptions) {
    let base: URL;
    try {
      base = new URL(options.server);
    } catch {
      throw new InvalidError(
        `Invalid server URL "${options.server}": expected e.g. "http://127.0.0.1:15080"`,
      );
    }
    if (base.protocol !== "http:" && base.protocol !== "https:") {
      throw new InvalidError(
        `Invalid server URL "${options.server}": the scheme must be "http" or "https"`,
      );
    }
    this.server = options.server;
    this.#base = base;
    this.#token = options.token;
    // Bound, because a detached `fetch` throws "Illegal invocation" in some runtimes.
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#headers = options.headers ?? {};
    this.#timeoutMs = options.timeoutMs;
    this.#onStaleConnection = options.onStaleConnection;
  }

  /**
   * Sends one request to `path` (e.g. `/v1/services`; segments already
   * encoded) and returns the parsed JSON answer, or `undefined` for an empty
   * one (204). The answer is cast to `T`, not validated. Throws the error
   * class of the kind of a non-2xx answer, with the server's `detail` as the
   * message, and an `UnavailableError` when the server cannot be reached.
   */
  async request<T = unknown>(
    method: string,
    path: string,
    options: RequestOptions = {},
  ): Promise<T> {
    const answer = await this.#exchange(method, path, options, "application/json");
    if ("unreachable" in answer) throw new UnavailableError(answer.unreachable);
    const { response, text } = answer;
    if (!response.ok) {
      throw rejection(answerOf(response, text), { server: this.server, path }).error;
    }
    if (text.trim() === "") return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ServerError(
        `Invalid answer from server "${this.server}" to ${method} "${path}": not JSON`,
        response.status,
      );
    }
  }

  /**
   * Like {@link request}, but resolves to the outcome instead of throwing,
   * for loops that retry each failure their own way (the agent's).
   */
  async call<T = unknown>(
    method: string,
    path: string,
    options: RequestOptions = {},
  ): Promise<ApiResult<T>> {
    const answer = await this.#exchange(method, path, options, "application/json");
    if ("unreachable" in answer) return { kind: "unreachable", error: answer.reason };
    const { response, text } = answer;
    if (!response.ok) return rejection(answerOf(response, text), { server: this.server, path });
    return { kind: "ok", status: response.status, body: parseLenient(text) as T };
  }

  /** GETs `path` and returns the raw body bytes (e.g. a backup archive); errors as {@link request}. */
  async download(path: string): Promise<Uint8Array> {
    const answer = await this.#exchange("GET", path, {}, "*/*", true);
    if ("unreachable" in answer) throw new UnavailableError(answer.unreachable);
    const { response, text, bytes } = answer;
    if (!response.ok) {
      throw rejection(answerOf(response, text), { server: this.server, path }).error;
    }
    return bytes!;
  }

  /**
   * Fetches every page of the list endpoint `path` by following its `next`
   * cursors, and returns all items in order. `query` holds the filters and is
   * sent with every page.
   */
  async list<T = unknown>(
    path: string,
    query: RequestOptions["query"] = {},
  ): Promise<T[]> {
    return (await this.#pages<T>(path, query, {})).items;
  }

  /**
   * Like {@link list}, but as a blocking query: the first page is asked
   * with `index` and `wait`, so the answer comes once the server's revision
   * has passed `index` (or the wait is over). Returns the items and the
   * revision they are at (the first page's `X-Ironmesh-Index`), the `index`
   * of the next call. Without `index`, answers at once.
   */
  async listAt<T = unknown>(
    path: string,
    query: RequestOptions["query"] = {},
    options: { index?: number; wait?: string; signal?: AbortSignal } = {},
  ): Promise<{ items: T[]; index: number }> {
    const blocking = options.index === undefined
      ? {}
      : { index: options.index, wait: options.wait };
    const result = await this.#pages<T>(path, query, blocking, options.signal);
    if (result.index === undefined) {
      throw new ServerError(
        `Invalid answer from server "${this.server}" to GET "${path}": no X-Ironmesh-Index header`,
        200,
      );
    }
    return { items: result.items, index: result.index };
  }

  async #pages<T>(
    path: string,
    query: RequestOptions["query"],
    firstPage: RequestOptions["query"],
    signal?: AbortSignal,
  ): Promise<{ items: T[]; index: number | undefined }> {
    const items: T[] = [];
    const seen = new Set<string>();
    let cursor: string | undefined;
    let index: number | undefined;
    let first = true;
    do {
      const answer = await this.#exchange("GET", path, {
        query: { ...query, ...(first ? firstPage : {}), cursor },
        ...(signal === undefined ? {} : { signal }),
      }, "application/json");
      if ("unreachable" in answer) throw new UnavailableError(answer.unreachable);
      const { response, text } = answer;
      if (!response.ok) {
        throw rejection(answerOf(response, text), { server: this.server, path }).error;
      }
      if (first) {
        const header = response.headers.get("x-ironmesh-index");
        index = header === null || !/^\d+$/.test(header) ? undefined : Number(header);
        first = false;
      }
      const page = parseLenient(text);
      if (!isPage(page)) {
        throw new ServerError(
          `Invalid answer from server "${this.server}" to GET "${path}": expected {"items": [...]}`,
          response.status,
        );
      }
      items.push(...(page.items as T[]));
      cursor = page.next ?? undefined;
      // A server that hands back a cursor twice would otherwise loop for ever.
      if (cursor !== undefined) {
        if (seen.has(cursor)) {
          throw new ServerError(
            `Invalid answer from server "${this.server}" to GET "${path}": cursor "${cursor}" repeats`,
            200,
          );
        }
        seen.add(cursor);
      }
    } while (cursor !== undefined);
    return { items, index };
  }

  /**
   * One round trip, the answer read to the end; no answer becomes
   * `unreachable` (the sentence for a thrown error) and `reason` (for a result).
   */
  async #exchange(
    method: string,
    path: string,
    options: RequestOptions,
    accept: string,
    binary = false,
  ): Promise<
    | { response: Response; text: string; bytes?: Uint8Array }
    | { unreachable: string; reason: string }
  > {
    const headers = new Headers({
      ...this.#headers,
      accept: `${accept}, application/problem+json`,
    });
    if (this.#token !== undefined) headers.set("authorization", `Bearer ${this.#token}`);
    let body: string | undefined;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers.set("content-type", "application/json");
    }
    for (const [name, value] of Object.entries(options.headers ?? {})) headers.set(name, value);
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const timeout = new AbortController();
    const timer = timeoutMs === undefined
      ? undefined
      : setTimeout(() => timeout.abort(), timeoutMs);
    const signals = [timeout.signal, ...(options.signal ? [options.signal] : [])];
    const noAnswer = (error: unknown, what: string) => {
      const reason = timeout.signal.aborted
        ? `No answer within ${formatDuration(timeoutMs!)}`
        : networkReason(error);
      return { unreachable: `${what} "${this.server}": ${reason}`, reason };
    };
    const send = () =>
      this.#fetch(this.#url(path, options.query), {
        method,
        headers,
        signal: AbortSignal.any(signals),
        ...(body === undefined ? {} : { body }),
      });
    const idempotent = options.idempotent ?? IDEMPOTENT_METHODS.has(method.toUpperCase());
    let response: Response;
    try {
      try {
        response = await send();
      } catch (error) {
        if (!idempotent || !closedUnderRequest(error) || AbortSignal.any(signals).aborted) {
          throw error;
        }
        // Once only: a second failure is news, not the keep-alive race.
        this.#onStaleConnection?.();
        response = await send();
      }
    } catch (error) {
      clearTimeout(timer);
      return noAnswer(error, "Cannot reach server");
    }
    try {
      if (binary && response.ok) {
        return { response, text: "", bytes: new Uint8Array(await response.arrayBuffer()) };
      }
      return { response, text: await response.text() };
    } catch (error) {
      return noAnswer(error, "Cannot read the answer of server");
    } finally {
      clearTimeout(timer);
    }
  }

  #url(path: string, query: RequestOptions["query"]): URL {
    const prefix = this.#base.pathname.replace(/\/+$/, "");
    const url = new URL(prefix + (path.startsWith("/") ? path : `/${path}`), this.#base);
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined) url.searchParams.set(name, String(value));
    }
    return url;
  }
}

function answerOf(response: Response, text: string): Answer {
  const { status, statusText, headers } = response;
  return { status, statusText, headers, text };
}

function isPage(value: unknown): value is Page<unknown> {
  if (typeof value !== "object" || value === null) return false;
  const page = value as { items?: unknown; next?: unknown };
  return Array.isArray(page.items) &&
    (page.next === undefined || page.next === null || typeof page.next === "string");
}

/** A non-2xx answer, read to the end. */
export interface Answer {
  status: number;
  statusText: string;
  headers: Headers;
  /** The body. */
  text: string;
}

/**
 * Decodes a non-2xx answer of `server` to `path`: its problem document, read
 * leniently (a proxy in front of the server may answer with HTML or plain
 * text, and the status must still reach the caller), and the error class of
 * its kind, with the server's words as the message.
 */
export function rejection(
  answer: Answer,
  request: { server: string; path: string },
): Rejection {
  const { status, text } = answer;
  const { server, path } = request;
  const json = parseLenient(text);
  const object = typeof json === "object" && json !== null ? json as Record<string, unknown> : {};
  // Not a document: its first line still helps.
  const firstLine = typeof json === "string" ? json.trim().split("\n", 1)[0]!.slice(0, 200) : "";
  const problem: ReceivedProblem = {
    type: stringOr(object.type, "about:blank"),
    title: stringOr(object.title, answer.statusText || `HTTP ${status}`),
    status,
    detail: stringOr(object.detail, firstLine),
    instance: stringOr(object.instance, path),
    problems: problemsOf(object.problems),
  };
  const message = nonEmpty(object.detail) ?? nonEmpty(object.title) ??
    `Server "${server}" answered HTTP ${status}${firstLine ? `: ${firstLine}` : ""}`;
  const retryAfterMs = parseRetryAfter(answer.headers.get("retry-after"), Date.now());
  const kind = kindOfAnswer(status, object.type);
  const error = kind === undefined ? new ServerError(message, status) : errorOfKind(kind, message, {
    problems: problem.problems,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  });
  return {
    kind: "rejected",
    status,
    problem,
    error,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  };
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

/** JSON, `null` for nothing, the text itself when it is not JSON. */
function parseLenient(text: string): unknown {
  if (text === "") return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

const LOCATIONS: ReadonlySet<unknown> = new Set(["query", "path", "header"]);

function problemsOf(value: unknown): FieldProblem[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((p: unknown) => {
    if (typeof p !== "object" || p === null) return [];
    const { pointer, message, in: where } = p as Record<string, unknown>;
    if (typeof pointer !== "string" || typeof message !== "string") return [];
    return [{
      pointer,
      message,
      ...(LOCATIONS.has(where) ? { in: where as NonNullable<FieldProblem["in"]> } : {}),
    }];
  });
}

function stringOr(value: unknown, fallback: string): string {
  return typeof value === "string" ? value : fallback;
}

function nonEmpty(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Methods that RFC 9110 (section 9.2.2) defines as idempotent. */
const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set([
  "GET",
  "HEAD",
  "PUT",
  "DELETE",
  "OPTIONS",
]);

/**
 * What a request on a connection the peer closed fails with: hyper's and
 * rustls' words under Deno's `fetch` ("connection closed before message
 * completed", "peer closed connection without sending TLS close_notify",
 * "connection reset", "broken pipe") and Node's codes. A refused connection,
 * a DNS or certificate failure or a timeout is none of these: sending again
 * would not help.
 */
const CLOSED_UNDER_REQUEST =
  /connection closed before message completed|close_notify|unexpected eof|connection reset|broken pipe|socket hang up|ECONNRESET|EPIPE/i;

/** True when `error` (or one of its causes) says the peer closed the connection under the request. */
function closedUnderRequest(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    if (CLOSED_UNDER_REQUEST.test(e.message)) return true;
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && CLOSED_UNDER_REQUEST.test(code)) return true;
  }
  return false;
}

/**
 * Deno's `fetch` says only "fetch failed"; the reason (e.g. "Connection
 * refused", "invalid peer certificate: UnknownIssuer") is in its cause.
 */
function networkReason(error: unknown): string {
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : undefined;
  if (cause === undefined) return messageOf(error);
  return cause.message.replace(/^error sending request for url \([^)]*\): /, "");
}
