/**
 * The one error vocabulary of Ironmesh. Domain code throws these; the edges
 * read {@link ERROR_KINDS}, the one table from a kind to its HTTP status,
 * problem title and gRPC status: the REST API renders problem documents with
 * it (`api/problem.ts`), the gRPC servers end refused streams with it, and
 * the clients (`client/api_client.ts`, the agent's `ServerApi` on top of it)
 * turn a problem document back into the same class. A module never needs to
 * know how it is being called.
 */

/** One problem with one field of an input, located by a JSON pointer (RFC 6901). */
export interface FieldProblem {
  /** JSON pointer to the offending field, e.g. `/services/0/port`; `""` is the whole input. */
  pointer: string;
  /** What is wrong, in a sentence without a final period. */
  message: string;
  /** Where the field is; absent means the body (or the file). */
  in?: "query" | "path" | "header";
}

/** Base class of every domain error; `kind` is what the edge tables switch on. */
export abstract class MeshError extends Error {
  abstract readonly kind: ErrorKind;
}

/** The closed set of error kinds, mapped to HTTP and gRPC status by {@link ERROR_KINDS}. */
export type ErrorKind =
  | "NotFound"
  | "AlreadyExists"
  | "Conflict"
  | "PreconditionFailed"
  | "Invalid"
  | "Unauthorized"
  | "Forbidden"
  | "TooLarge"
  | "RateLimited"
  | "Unavailable"
  | "StorageUnavailable";

/** The named object does not exist. */
export class NotFoundError extends MeshError {
  readonly kind = "NotFound";
}

/** A create-only write met an object that already exists. */
export class AlreadyExistsError extends MeshError {
  readonly kind = "AlreadyExists";
}

/** The write contradicts the current state (e.g. deleting a service that still has instances). */
export class ConflictError extends MeshError {
  readonly kind = "Conflict";
}

/** An `If-Match` revision no longer matches the stored object. */
export class PreconditionFailedError extends MeshError {
  readonly kind = "PreconditionFailed";
  constructor(message: string, readonly current: number | null) {
    super(message);
  }
}

/** The input is malformed or violates a rule; `problems` lists every bad field. */
export class InvalidError extends MeshError {
  readonly kind = "Invalid";
  constructor(message: string, readonly problems: FieldProblem[] = []) {
    super(message);
  }
}

/** No credentials, or credentials that are not valid. */
export class UnauthorizedError extends MeshError {
  readonly kind = "Unauthorized";
}

/** Valid credentials that do not allow this action. */
export class ForbiddenError extends MeshError {
  readonly kind = "Forbidden";
}

/** The input is larger than the limit for it. */
export class TooLargeError extends MeshError {
  readonly kind = "TooLarge";
}

/** The server cannot do this now (shutting down, store unreachable); retrying later may work. */
export class UnavailableError extends MeshError {
  readonly kind = "Unavailable";
}

/**
 * The store cannot take this read or write now: a full disk, a read-only
 * data directory, an I/O error, an unreachable database. Nothing partial was
 * stored; the message says what failed and why, and retrying once the
 * operator fixed the cause works.
 */
export class StorageUnavailableError extends MeshError {
  readonly kind = "StorageUnavailable";
  /** When a caller may try again, in milliseconds. */
  readonly retryAfterMs: number;
  constructor(message: string, options: ErrorOptions & { retryAfterMs?: number } = {}) {
    super(message, options);
    this.retryAfterMs = options.retryAfterMs ?? STORAGE_RETRY_AFTER_MS;
  }
}

/**
 * What a storage failure tells callers to wait: long enough not to hammer a
 * full disk, short enough that agents come back soon after it is fixed.
 */
export const STORAGE_RETRY_AFTER_MS = 5_000;

/** Too many requests of this kind right now; `retryAfterMs` says when to come back. */
export class RateLimitedError extends MeshError {
  readonly kind = "RateLimited";
  constructor(message: string, readonly retryAfterMs: number) {
    super(message);
  }
}

/**
 * A gRPC status code by its name in the gRPC spec (`doc/statuscodes.md`);
 * the gRPC edges look the number up in `@grpc/grpc-js`'s `status`, which
 * the compiler checks has every name.
 */
export type GrpcCode =
  | "INVALID_ARGUMENT"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "PERMISSION_DENIED"
  | "RESOURCE_EXHAUSTED"
  | "FAILED_PRECONDITION"
  | "ABORTED"
  | "UNAVAILABLE"
  | "UNAUTHENTICATED";

/** How one error kind is answered at each edge. */
export interface ErrorMapping {
  /** HTTP status of the problem document. */
  status: number;
  /** Problem title; its slug names the problem `type` (see {@link problemType}). */
  title: string;
  /** gRPC status that ends a refused stream. */
  grpc: GrpcCode;
}

/**
 * The one table from error kinds to HTTP and gRPC status. The gRPC codes
 * follow the spec's guide: `FAILED_PRECONDITION` when the state must be
 * fixed first (a service that still has instances), `ABORTED` when a
 * test-and-set lost (a stale `If-Match`: read again and retry),
 * `RESOURCE_EXHAUSTED` for a quota or a size limit.
 */
export const ERROR_KINDS: Readonly<Record<ErrorKind, Readonly<ErrorMapping>>> = {
  Invalid: { status: 422, title: "Invalid request", grpc: "INVALID_ARGUMENT" },
  NotFound: { status: 404, title: "Not found", grpc: "NOT_FOUND" },
  AlreadyExists: { status: 409, title: "Already exists", grpc: "ALREADY_EXISTS" },
  Conflict: { status: 409, title: "Conflict", grpc: "FAILED_PRECONDITION" },
  PreconditionFailed: { status: 412, title: "Precondition failed", grpc: "ABORTED" },
  Unauthorized: { status: 401, title: "Unauthorized", grpc: "UNAUTHENTICATED" },
  Forbidden: { status: 403, title: "Forbidden", grpc: "PERMISSION_DENIED" },
  TooLarge: { status: 413, title: "Payload too large", grpc: "RESOURCE_EXHAUSTED" },
  RateLimited: { status: 429, title: "Too many requests", grpc: "RESOURCE_EXHAUSTED" },
  Unavailable: { status: 503, title: "Service unavailable", grpc: "UNAVAILABLE" },
  StorageUnavailable: { status: 503, title: "Storage unavailable", grpc: "UNAVAILABLE" },
};

/** An RFC 9457 problem document: the body of every REST error (`application/problem+json`). */
export interface Problem {
  /** URI of the kind of problem, from its title: see {@link problemType}. */
  type: string;
  /** Short summary of the kind of problem. */
  title: string;
  /** The HTTP status code. */
  status: number;
  /** What went wrong in this case, and often how to fix it. */
  detail: string;
  /** The request path. */
  instance: string;
  /** Every bad field, when the input was invalid. */
  problems?: FieldProblem[];
}

/** The problem `type` URI of a title: `Not found` → `https://ironmesh.io/problems/not-found`. */
export function problemType(title: string): string {
  return `https://ironmesh.io/problems/${title.toLowerCase().replaceAll(" ", "-")}`;
}

const KIND_OF_TYPE = new Map(
  (Object.entries(ERROR_KINDS) as [ErrorKind, ErrorMapping][]).map((
    [kind, { title }],
  ) => [problemType(title), kind]),
);

/**
 * The error kind of an answer: by its problem `type` (409 is `AlreadyExists`
 * or `Conflict`, told apart only there), else by a status that one kind has
 * alone, so an answer from a proxy in front of the server still reads right.
 * A 400 (a body that is not JSON) reads as `Invalid`, a 503 of no known type
 * as `Unavailable`; a status of no kind
 * (500, 502, 415…) is `undefined`.
 */
export function kindOfAnswer(status: number, type: unknown): ErrorKind | undefined {
  const byType = typeof type === "string" ? KIND_OF_TYPE.get(type) : undefined;
  if (byType !== undefined && ERROR_KINDS[byType].status === status) return byType;
  if (status === 400) return "Invalid";
  if (status === 409) return "Conflict";
  if (status === 503) return "Unavailable";
  const kinds = (Object.keys(ERROR_KINDS) as ErrorKind[]).filter((k) =>
    ERROR_KINDS[k].status === status
  );
  return kinds.length === 1 ? kinds[0] : undefined;
}

/** What an edge knows of an error besides its kind and message. */
export interface ErrorDetails {
  /** The bad fields of an `Invalid` error. */
  problems?: FieldProblem[];
  /**
   * When a `RateLimited` or `StorageUnavailable` caller may come back, in
   * milliseconds. Default: 1 000 and {@link STORAGE_RETRY_AFTER_MS}.
   */
  retryAfterMs?: number;
  /** The revision a `PreconditionFailed` object is at, when known. */
  current?: number | null;
}

/** The error class of `kind`, as an edge that received it (a client) rebuilds it. */
export function errorOfKind(
  kind: ErrorKind,
  message: string,
  details: ErrorDetails = {},
): MeshError {
  switch (kind) {
    case "NotFound":
      return new NotFoundError(message);
    case "AlreadyExists":
      return new AlreadyExistsError(message);
    case "Conflict":
      return new ConflictError(message);
    case "PreconditionFailed":
      return new PreconditionFailedError(message, details.current ?? null);
    case "Invalid":
      return new InvalidError(message, details.problems ?? []);
    case "Unauthorized":
      return new UnauthorizedError(message);
    case "Forbidden":
      return new ForbiddenError(message);
    case "TooLarge":
      return new TooLargeError(message);
    case "RateLimited":
      return new RateLimitedError(message, details.retryAfterMs ?? 1_000);
    case "Unavailable":
      return new UnavailableError(message);
    case "StorageUnavailable":
      return new StorageUnavailableError(
        message,
        details.retryAfterMs === undefined ? {} : { retryAfterMs: details.retryAfterMs },
      );
  }
}

/**
 * The gRPC status of an error that refuses a stream. What is not one of ours
 * comes from decoding the peer's message, so it is the peer's mistake.
 */
export function grpcCodeOf(error: unknown): GrpcCode {
  return error instanceof MeshError ? ERROR_KINDS[error.kind].grpc : "INVALID_ARGUMENT";
}
