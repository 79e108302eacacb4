import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { type ErrorKind, type FieldProblem, MeshError, RateLimitedError } from "../core/errors.ts";

/** The one table from domain error kinds to HTTP status codes and titles. */
export const HTTP_STATUS: Record<ErrorKind, { status: ContentfulStatusCode; title: string }> = {
  Invalid: { status: 422, title: "Invalid request" },
  NotFound: { status: 404, title: "Not found" },
  AlreadyExists: { status: 409, title: "Already exists" },
  Conflict: { status: 409, title: "Conflict" },
  PreconditionFailed: { status: 412, title: "Precondition failed" },
  Unauthorized: { status: 401, title: "Unauthorized" },
  Forbidden: { status: 403, title: "Forbidden" },
  TooLarge: { status: 413, title: "Payload too large" },
  RateLimited: { status: 429, title: "Too many requests" },
  Unavailable: { status: 503, title: "Service unavailable" },
};

/**
 * An HTTP-only failure that has no domain meaning (malformed JSON, a wrong
 * content type): thrown by request parsing in this layer only.
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

/** An RFC 9457 problem document. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  problems?: FieldProblem[];
  /** Seconds to wait before retrying (sent as `Retry-After`, not in the body). */
  retryAfter?: number;
}

function slug(title: string): string {
  return title.toLowerCase().replaceAll(" ", "-");
}

/** Builds the problem document for any error; unknown errors become a 500 without internals. */
export function toProblem(error: unknown, path: string): Problem {
  if (error instanceof MeshError) {
    const { status, title } = HTTP_STATUS[error.kind];
    const problems = "problems" in error ? error.problems as FieldProblem[] : [];
    return {
      type: `https://ironmesh.io/problems/${slug(title)}`,
      title,
      status,
      detail: error.message,
      instance: path,
      ...(problems.length ? { problems } : {}),
      ...(error instanceof RateLimitedError
        ? { retryAfter: Math.max(1, Math.ceil(error.retryAfterMs / 1000)) }
        : {}),
    };
  }
  if (error instanceof HttpProblem) {
    return {
      type: `https://ironmesh.io/problems/${slug(error.title)}`,
      title: error.title,
      status: error.status,
      detail: error.message,
      instance: path,
      ...(error.problems.length ? { problems: error.problems } : {}),
    };
  }
  return {
    type: "https://ironmesh.io/problems/internal-error",
    title: "Internal error",
    status: 500,
    detail: "The server failed to handle this request; the server log has the details",
    instance: path,
  };
}

/** Renders a problem as `application/problem+json`. */
export function problemResponse(c: Context, problem: Problem): Response {
  const headers: Record<string, string> = { "content-type": "application/problem+json" };
  if (problem.status === 401) headers["www-authenticate"] = 'Bearer realm="ironmesh"';
  const { retryAfter, ...body } = problem;
  if (retryAfter !== undefined) headers["retry-after"] = String(retryAfter);
  return c.body(JSON.stringify(body), problem.status as ContentfulStatusCode, headers);
}
