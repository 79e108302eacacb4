/**
 * A small client for the Ironmesh REST API, used by the CLI verbs and the
 * end-to-end tests. It speaks the server's error vocabulary back: a problem
 * document (RFC 9457) becomes the matching error class from `core/errors.ts`,
 * so callers handle a 404 from the server and a local `NotFoundError` alike.
 */
import {
  ConflictError,
  ForbiddenError,
  InvalidError,
  type MeshError,
  NotFoundError,
  PreconditionFailedError,
  TooLargeError,
  UnauthorizedError,
  UnavailableError,
} from "../core/errors.ts";
import type { FieldProblem } from "../core/errors.ts";

/** Options of {@link ApiClient}. */
export interface ApiClientOptions {
  /** Base URL of the server, e.g. `http://127.0.0.1:15080`; a path prefix is kept. */
  server: string;
  /** Bearer token sent with every request; none by default. */
  token?: string;
  /** The `fetch` to use; `globalThis.fetch` by default. */
  fetch?: typeof fetch;
}

/** Options of {@link ApiClient.request}. */
export interface RequestOptions {
  /** Sent as JSON; no body by default. */
  body?: unknown;
  /** Extra headers, e.g. `If-Match`; none by default. */
  headers?: Record<string, string>;
  /** Query parameters; `undefined` values are left out. None by default. */
  query?: Record<string, string | number | boolean | undefined>;
}

/** One page of a list endpoint. */
export interface Page<T> {
  items: T[];
  /** Cursor of the next page, or `null` (or absent) on the last page. */
  next?: string | null;
}

/** The server answered a status that has no kind of its own (e.g. 500, 502, 429). */
export class ServerError extends UnavailableError {
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

/** A problem document as the server sends it (RFC 9457). */
interface Problem {
  type?: unknown;
  title?: unknown;
  status?: unknown;
  detail?: unknown;
  problems?: unknown;
  current?: unknown;
}

/** A typed client for the `/v1` REST API. */
export class ApiClient {
  /** The server's base URL, as given, for messages. */
  readonly server: string;
  #base: URL;
  #token: string | undefined;
  #fetch: typeof fetch;

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
  }

  /**
   * Sends one request to `path` (e.g. `/v1/services`; segments already
   * encoded) and returns the parsed JSON answer, or `undefined` for an empty
   * one (204). The answer is cast to `T`, not validated. Throws the error
   * class matching the status of a non-2xx answer, with the server's `detail`
   * as the message, and an `UnavailableError` when the server cannot be reached.
   */
  async request<T = unknown>(
    method: string,
    path: string,
    options: RequestOptions = {},
  ): Promise<T> {
    const url = this.#url(path, options.query);
    const headers = new Headers({ accept: "application/json, application/problem+json" });
    if (this.#token !== undefined) headers.set("authorization", `Bearer ${this.#token}`);
    let body: string | undefined;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers.set("content-type", "application/json");
    }
    for (const [name, value] of Object.entries(options.headers ?? {})) headers.set(name, value);

    let response: Response;
    try {
      response = await this.#fetch(url, {
        method,
        headers,
        ...(body === undefined ? {} : { body }),
      });
    } catch (error) {
      throw new UnavailableError(`Cannot reach server "${this.server}": ${networkReason(error)}`);
    }
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      throw new UnavailableError(
        `Cannot read the answer of server "${this.server}": ${messageOf(error)}`,
      );
    }
    if (!response.ok) throw errorFor(this.server, response, text);
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

  /** GETs `path` and returns the raw body bytes (e.g. a backup archive); errors as {@link request}. */
  async download(path: string): Promise<Uint8Array> {
    const headers = new Headers({ accept: "*/*" });
    if (this.#token !== undefined) headers.set("authorization", `Bearer ${this.#token}`);
    let response: Response;
    try {
      response = await this.#fetch(this.#url(path, undefined), { headers });
    } catch (error) {
      throw new UnavailableError(`Cannot reach server "${this.server}": ${networkReason(error)}`);
    }
    if (!response.ok) throw errorFor(this.server, response, await response.text());
    return new Uint8Array(await response.arrayBuffer());
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
    const items: T[] = [];
    const seen = new Set<string>();
    let cursor: string | undefined;
    do {
      const page = await this.request<unknown>("GET", path, { query: { ...query, cursor } });
      if (!isPage(page)) {
        throw new ServerError(
          `Invalid answer from server "${this.server}" to GET "${path}": expected {"items": [...]}`,
          200,
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
    return items;
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

function isPage(value: unknown): value is Page<unknown> {
  if (typeof value !== "object" || value === null) return false;
  const page = value as { items?: unknown; next?: unknown };
  return Array.isArray(page.items) &&
    (page.next === undefined || page.next === null || typeof page.next === "string");
}

/** Maps a non-2xx answer to the error class of its status, keeping the server's words. */
function errorFor(server: string, response: Response, text: string): MeshError {
  const problem = parseProblem(text);
  // A proxy in front of the server may answer with plain text or HTML; its first line still helps.
  const firstLine = text.trim().split("\n", 1)[0]?.slice(0, 200) ?? "";
  const message = nonEmpty(problem?.detail) ?? nonEmpty(problem?.title) ??
    `Server "${server}" answered HTTP ${response.status}${firstLine ? `: ${firstLine}` : ""}`;
  switch (response.status) {
    case 400:
    case 422:
      return new InvalidError(message, problemsOf(problem?.problems));
    case 401:
      return new UnauthorizedError(message);
    case 403:
      return new ForbiddenError(message);
    case 404:
      return new NotFoundError(message);
    case 409:
      return new ConflictError(message);
    case 412: {
      const current = typeof problem?.current === "number" ? problem.current : null;
      return new PreconditionFailedError(message, current);
    }
    case 413:
      return new TooLargeError(message);
    case 503:
      return new UnavailableError(message);
    default:
      return new ServerError(message, response.status);
  }
}

function parseProblem(text: string): Problem | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null ? value as Problem : undefined;
  } catch {
    return undefined;
  }
}

function problemsOf(value: unknown): FieldProblem[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((p: unknown) => {
    if (typeof p !== "object" || p === null) return [];
    const { pointer, message } = p as { pointer?: unknown; message?: unknown };
    return typeof pointer === "string" && typeof message === "string" ? [{ pointer, message }] : [];
  });
}

function nonEmpty(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Deno's `fetch` says only "fetch failed"; the reason (e.g. "Connection refused") is in its cause. */
function networkReason(error: unknown): string {
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : undefined;
  if (cause === undefined) return messageOf(error);
  return cause.message.replace(/^error sending request for url \([^)]*\): /, "");
}
