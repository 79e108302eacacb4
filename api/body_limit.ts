/**
 * The request body limit of the REST API, as a problem document: Hono's
 * `bodyLimit` counts the bytes (also of a chunked body, without a
 * `Content-Length`), this turns its refusal into our 413.
 */
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { TooLargeError } from "../core/errors.ts";

/** Options of {@link limitBody}. */
export interface BodyLimitOptions {
  /** Largest accepted body, in bytes. */
  maxBytes: number;
}

/** Refuses a body over `maxBytes` with a 413 before anything reads it. */
export function limitBody(options: BodyLimitOptions): MiddlewareHandler {
  const { maxBytes } = options;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    throw new RangeError(
      `Invalid body limit ${maxBytes}: must be a whole number of bytes, 1 or more`,
    );
  }
  const limit = bodyLimit({
    maxSize: maxBytes,
    onError: () => {
      throw new TooLargeError(`The body exceeds ${maxBytes} bytes`);
    },
  });
  return function limitBody(c, next) {
    return limit(c, next);
  };
}
