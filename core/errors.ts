/**
 * The one error vocabulary of Ironmesh. Domain code throws these; the edges
 * (HTTP in `api/`, gRPC in `xds/`, the CLI) map them to their own status codes
 * in one table each, so a module never needs to know how it is being called.
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

/** The closed set of error kinds, mapped to HTTP and gRPC status at the edges. */
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
  | "Unavailable";

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

/** Too many requests of this kind right now; `retryAfterMs` says when to come back. */
export class RateLimitedError extends MeshError {
  readonly kind = "RateLimited";
  constructor(message: string, readonly retryAfterMs: number) {
    super(message);
  }
}
