import assert from "node:assert/strict";
import { status as grpcStatus } from "@grpc/grpc-js";
import {
  ERROR_KINDS,
  type ErrorKind,
  errorOfKind,
  grpcCodeOf,
  kindOfAnswer,
  problemType,
} from "./errors.ts";

/**
 * What each kind must be on the wire, written out here rather than read from
 * the table, so that a changed row fails: HTTP status, problem type, gRPC code.
 */
const EXPECTED: Record<ErrorKind, [number, string, number]> = {
  Invalid: [422, "invalid-request", 3],
  NotFound: [404, "not-found", 5],
  AlreadyExists: [409, "already-exists", 6],
  Conflict: [409, "conflict", 9],
  PreconditionFailed: [412, "precondition-failed", 10],
  Unauthorized: [401, "unauthorized", 16],
  Forbidden: [403, "forbidden", 7],
  TooLarge: [413, "payload-too-large", 8],
  RateLimited: [429, "too-many-requests", 8],
  Unavailable: [503, "service-unavailable", 14],
  StorageUnavailable: [503, "storage-unavailable", 14],
};

Deno.test("ERROR_KINDS maps every kind to its HTTP status, problem type and gRPC code", () => {
  assert.deepEqual(Object.keys(ERROR_KINDS).sort(), Object.keys(EXPECTED).sort());
  for (const [kind, [status, slug, code]] of Object.entries(EXPECTED)) {
    const row = ERROR_KINDS[kind as ErrorKind];
    assert.equal(row.status, status, kind);
    assert.equal(problemType(row.title), `https://ironmesh.io/problems/${slug}`, kind);
    assert.equal(grpcStatus[row.grpc], code, kind);
  }
});

Deno.test("kindOfAnswer() reads every kind back from its status and problem type", () => {
  for (const [kind, { status, title }] of Object.entries(ERROR_KINDS)) {
    assert.equal(kindOfAnswer(status, problemType(title)), kind);
  }
});

Deno.test("kindOfAnswer() falls back on the status when the type is not ours", () => {
  assert.equal(kindOfAnswer(404, "about:blank"), "NotFound");
  assert.equal(kindOfAnswer(429, undefined), "RateLimited");
  assert.equal(kindOfAnswer(409, "about:blank"), "Conflict");
  assert.equal(kindOfAnswer(503, undefined), "Unavailable");
  assert.equal(kindOfAnswer(400, problemType("Malformed JSON")), "Invalid");
  // A type that names another status is not believed.
  assert.equal(kindOfAnswer(404, problemType("Conflict")), "NotFound");
  for (const status of [415, 500, 502]) assert.equal(kindOfAnswer(status, undefined), undefined);
});

Deno.test("errorOfKind() builds the class of each kind, which grpcCodeOf() maps to its code", () => {
  for (const kind of Object.keys(EXPECTED) as ErrorKind[]) {
    const error = errorOfKind(kind, "It went wrong", {
      problems: [{ pointer: "/a", message: "Bad" }],
      retryAfterMs: 3_000,
    });
    assert.equal(error.kind, kind);
    assert.equal(error.message, "It went wrong");
    assert.equal(grpcStatus[grpcCodeOf(error)], EXPECTED[kind][2], kind);
  }
  assert.equal(grpcCodeOf(new Error('Unknown field "x"')), "INVALID_ARGUMENT");
});
