/**
 * The dashboard's only way to the server: the REST API of the same origin,
 * with the API token the user signed in with. The token lives in this tab's
 * `sessionStorage` (gone when the tab closes) and travels only in the
 * `Authorization` header: never in a URL (so never in a server log, the
 * history or a referrer), never in a cookie (so no other site can make the
 * browser send it).
 */
import type { FieldProblem } from "../../../core/errors.ts";

const TOKEN_KEY = "ironmesh.token";

/** The signed-in token, or `null`. */
export function storedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Remembers the token for this tab. */
export function storeToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

/** Forgets the token (sign-out, or the server no longer accepts it). */
export function forgetToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
  dispatchEvent(new Event("ironmesh:signed-out"));
}

/** A problem document the API answered with. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly problems: FieldProblem[] = [],
  ) {
    super(message);
  }
}

/** Options of {@link api}. */
export interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | number | boolean | undefined | null>;
  headers?: Record<string, string>;
  /** The token to use instead of the stored one (sign-in tries it first). */
  token?: string;
  signal?: AbortSignal;
}

/** The answer of a successful call. */
export interface Answer<T> {
  status: number;
  body: T;
  headers: Headers;
}

/** `path` with `query`'s defined values. */
export function withQuery(path: string, query: RequestOptions["query"] = {}): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== "") params.set(k, String(v));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

/** Calls the API; a problem answer throws an {@link ApiError}, a 401 also signs out. */
export async function api<T>(
  method: string,
  path: string,
  options: RequestOptions = {},
): Promise<Answer<T>> {
  const token = options.token ?? storedToken();
  const headers: Record<string, string> = { accept: "application/json", ...options.headers };
  if (token) headers.authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers["content-type"] = "application/json";
  }
  const res = await fetch(withQuery(path, options.query), {
    method,
    headers,
    credentials: "omit",
    cache: "no-store",
    ...(body === undefined ? {} : { body }),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const text = await res.text();
  let parsed: unknown = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = text;
  }
  if (!res.ok) {
    const problem = (parsed ?? {}) as {
      detail?: string;
      title?: string;
      problems?: FieldProblem[];
    };
    if (res.status === 401 && options.token === undefined) forgetToken();
    throw new ApiError(
      res.status,
      problem.detail ?? problem.title ?? `${method} ${path} answered ${res.status}`,
      problem.problems ?? [],
    );
  }
  return { status: res.status, body: parsed as T, headers: res.headers };
}

/**
 * Follows the server's event stream (`GET /v1/events`) and calls `onChange`
 * with each new registry revision. `EventSource` cannot send a header, so the
 * stream is read with `fetch`; it reconnects after a second when cut, sending
 * the last revision seen so nothing is missed. Returns a function that stops it.
 */
export function followEvents(onChange: (revision: number) => void): () => void {
  const abort = new AbortController();
  let last: string | undefined;
  const loop = async () => {
    while (!abort.signal.aborted) {
      try {
        const token = storedToken();
        if (!token) return;
        const headers: Record<string, string> = {
          authorization: `Bearer ${token}`,
          accept: "text/event-stream",
        };
        if (last !== undefined) headers["last-event-id"] = last;
        const res = await fetch("/v1/events", {
          headers,
          credentials: "omit",
          cache: "no-store",
          signal: abort.signal,
        });
        if (res.status === 401) return forgetToken();
        if (!res.ok || !res.body) throw new Error(`events answered ${res.status}`);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        while (true) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const message = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const id = /^id: ?(.*)$/m.exec(message)?.[1];
            if (id !== undefined && /^event: ?change$/m.test(message)) {
              last = id;
              onChange(Number(id));
            }
          }
        }
      } catch {
        // Cut or refused: try again shortly, unless stopped.
      }
      if (!abort.signal.aborted) await new Promise((r) => setTimeout(r, 1000));
    }
  };
  loop();
  return () => abort.abort();
}
