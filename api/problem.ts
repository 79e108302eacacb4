/**
 * Problem rendering (RFC 9457) of the REST API: every error leaves as
 * `application/problem+json`, with the status and title of its kind from
 * the one table, `ERROR_KINDS` in `core/errors.ts`.
 */
import type { Context, ErrorHandler, NotFoundHandler } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import {
  ERROR_KINDS,
  type FieldProblem,
  MeshError,
  NotFoundError,
  type Problem,
  problemType,
  RateLimitedError,
  StorageUnavailableError,
} from "../core/errors.ts";
import type { Logger } from "../core/log.ts";

/** nginx's status for a request whose client hung up before the server could answer it. */
export const CLIENT_CLOSED_REQUEST = 499 as ContentfulStatusCode;

/**
 * An HTTP-only failure that has no domain meaning (malformed JSON, a wrong
 * content type, a method a path does not take): thrown by this layer only.
 */
export class HttpProblem extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly title: string,
    message: string,
    readonly problems: FieldProblem[] = [],
  ) {
    super(message);
  }
}

/** A problem document with what is sent beside it. */
export interface RenderedProblem extends Problem {
  /** Seconds to wait before retrying (sent as `Retry-After`, not in the body). */
  retryAfter?: number;
}

/** Builds the problem document for any error; unknown errors become a 500 without internals. */
export function toProblem(error: unknown, path: string): RenderedProblem {
  if (error instanceof MeshError) {
    const { status, title } = ERROR_KINDS[error.kind];
    const problems = "problems" in error ? error.problems as FieldProblem[] : [];
    return {
      type: problemType(title),
      title,
      status,
      detail: error.message,
      instance: path,
      ...(problems.length ? { problems } : {}),
      ...(error instanceof RateLimitedError || error instanceof StorageUnavailableError
        ? { retryAfter: Math.max(1, Math.ceil(error.retryAfterMs / 1000)) }
        : {}),
    };
  }
  if (error instanceof HttpProblem) {
    return {
      type: problemType(error.title),
      title: error.title,
      status: error.status,
      detail: error.message,
      instance: path,
      ...(error.problems.length ? { problems: error.problems } : {}),
    };
  }
  return {
    type: problemType("Internal error"),
    title: "Internal error",
    status: 500,
    detail: "The server failed to handle this request; the server log has the details",
    instance: path,
  };
}

/** Renders a problem as `application/problem+json`. */
export function problemResponse(c: Context, problem: RenderedProblem): Response {
  const headers: Record<string, string> = { "content-type": "application/problem+json" };
  if (problem.status === 401) headers["www-authenticate"] = 'Bearer realm="ironmesh"';
  const { retryAfter, ...body } = problem;
  if (retryAfter !== undefined) headers["retry-after"] = String(retryAfter);
  return c.body(JSON.stringify(body), problem.status as ContentfulStatusCode, headers);
}

/** Options of {@link renderErrors}. */
export interface RenderErrorsOptions {
  /** Where a failure of ours (a 500) is logged with its stack. */
  log: Logger;
}

/**
 * The app's `onError` and `notFound`: every error leaves as a problem
 * document; a failure of ours (not a refusal, not a 503) is logged with its
 * stack, which the answer never shows. A storage failure is logged with its
 * cause and no stack: it is the disk's or the database's doing, not a bug.
 */
export function renderErrors(
  options: RenderErrorsOptions,
): { onError: ErrorHandler; notFound: NotFoundHandler } {
  const { log } = options;
  if (!log) throw new TypeError("Error rendering needs a logger");
  return {
    onError: function renderError(error, c) {
      const problem = toProblem(error, c.req.path);
      if (error instanceof StorageUnavailableError) {
        log.error("Request failed: storage unavailable", {
          method: c.req.method,
          path: c.req.path,
          error: error.message,
        });
      } else if (problem.status >= 500 && problem.status !== 503) {
        log.error("Request failed", {
          method: c.req.method,
          path: c.req.path,
          error: String(error),
          stack: (error as Error).stack,
        });
      }
      return problemResponse(c, problem);
    },
    notFound: function noRoute(c) {
      const error = new NotFoundError(`No route for ${c.req.method} ${c.req.path}`);
      return problemResponse(c, toProblem(error, c.req.path));
    },
  };
}
