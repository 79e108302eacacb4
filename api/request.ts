import type { Context } from "hono";
import { z } from "zod";
import { parseDuration } from "../core/duration.ts";
import { type FieldProblem, InvalidError, MeshError } from "../core/errors.ts";
import { parseSelector, type Selector } from "../core/labels.ts";
import { type Health, type NodeStatus } from "../core/model.ts";
import { isLabelName, isNodeName, NODE_NAME_RULE } from "../core/names.ts";
import { parseWith, zodProblems } from "../core/validate.ts";
import type { ListFilter, WritePreconditions } from "../registry/registry.ts";
import { CLIENT_CLOSED_REQUEST, HttpProblem } from "./problem.ts";

/** Reads and validates a JSON body against `schema`; every bad field gets a JSON pointer. */
export async function readBody<S extends z.ZodType>(
  c: Context,
  schema: S,
  what: string,
): Promise<z.output<S>> {
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/(.+\+)?json\b/i.test(type)) {
    throw new HttpProblem(
      415,
      "Unsupported media type",
      `Expected a JSON body with "Content-Type: application/json", got "${type || "none"}"`,
    );
  }
  let text: string;
  try {
    text = await c.req.text();
  } catch (error) {
    // The body limit's refusal, or the client hanging up mid-body (the stream reports the reset).
    if (error instanceof MeshError || error instanceof HttpProblem) throw error;
    throw clientClosed();
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new HttpProblem(
      400,
      "Malformed JSON",
      `The body is not valid JSON: ${(error as Error).message}`,
    );
  }
  return parseWith(schema, value, what);
}

/**
 * A body the client stopped sending: its doing, not ours, so it is counted and
 * logged as nginx's 499 "Client closed request" (no one reads the answer).
 */
function clientClosed(): HttpProblem {
  return new HttpProblem(
    CLIENT_CLOSED_REQUEST,
    "Client closed request",
    "The client closed the connection before it sent the whole body",
  );
}

const MAX_WAIT_MS = 10 * 60_000;
const DEFAULT_WAIT_MS = 5 * 60_000;

// Not strict: unknown parameters are reported once, by readListQuery, naming the list's filters.
const listQuerySchema = z.object({
  limit: z.coerce.number().int("Must be an integer").min(1, "Must be between 1 and 1000").max(
    1000,
    "Must be between 1 and 1000",
  ).default(100),
  cursor: z.string().max(1024).optional(),
  namespace: z.string().optional(),
  service: z.string().optional(),
  node: z.string().optional(),
  health: z.enum(["healthy", "unhealthy", "draining"]).optional(),
  status: z.enum(["alive", "stale"]).optional(),
  labelSelector: z.string().max(4096).optional(),
  index: z.coerce.number().int("Must be an integer").min(0, "Must be 0 or more").optional(),
  wait: z.string().optional(),
});

/** A parsed list request: filters, page, and an optional blocking wait. */
export interface ListRequest {
  filter: ListFilter;
  /** Blocking query: wait until the registry revision exceeds this. */
  index?: number;
  waitMs: number;
}

/** Refuses every query parameter of a route that takes none, naming each (a 422). */
export function refuseQuery(c: Context): void {
  const keys = Object.keys(c.req.query());
  if (keys.length === 0) return;
  throw new InvalidError(
    `Invalid query: ${keys[0]}: Unknown query parameter "${keys[0]}": this list takes none`,
    keys.map((key) => ({
      in: "query" as const,
      pointer: `/${key}`,
      message: `Unknown query parameter "${key}"`,
    })),
  );
}

/**
 * Parses list query parameters. `allowed` names the filters this list
 * supports, so a typo like `?servce=web` is refused instead of silently
 * returning everything.
 */
export function readListQuery(c: Context, allowed: readonly string[]): ListRequest {
  const query = c.req.query();
  const problems: FieldProblem[] = [];
  const common = ["limit", "cursor", "labelSelector", "index", "wait"];
  for (const key of Object.keys(query)) {
    if (!common.includes(key) && !allowed.includes(key)) {
      problems.push({
        in: "query",
        pointer: `/${key}`,
        message: `Unknown query parameter "${key}"`,
      });
    }
  }
  const parsed = listQuerySchema.safeParse(query);
  if (!parsed.success) {
    problems.push(...zodProblems(parsed.error).map((p) => ({ ...p, in: "query" as const })));
  }
  if (problems.length || !parsed.success) {
    throw new InvalidError(
      `Invalid query: ${problems[0]?.pointer.slice(1)}: ${problems[0]?.message}`,
      problems,
    );
  }
  const q = parsed.data;
  const bad = (pointer: string, message: string): never => {
    throw new InvalidError(`Invalid query: ${pointer}: ${message}`, [{
      in: "query",
      pointer: `/${pointer}`,
      message,
    }]);
  };
  let selector: Selector | undefined;
  if (q.labelSelector !== undefined) {
    const result = parseSelector(q.labelSelector);
    if (!result.ok) bad("labelSelector", result.error);
    else selector = result.selector;
  }
  let after: string | undefined;
  if (q.cursor !== undefined) {
    try {
      after = new TextDecoder("utf-8", { fatal: true }).decode(
        Uint8Array.from(
          atob(q.cursor.replaceAll("-", "+").replaceAll("_", "/")),
          (ch) => ch.charCodeAt(0),
        ),
      );
    } catch {
      bad("cursor", 'Not a cursor from a previous page\'s "next"');
    }
  }
  for (const key of ["namespace", "service"] as const) {
    if (q[key] !== undefined && !isLabelName(q[key])) bad(key, "Must be a DNS-1123 label");
  }
  if (q.node !== undefined && !isNodeName(q.node)) bad("node", `Must be ${NODE_NAME_RULE}`);
  let waitMs = DEFAULT_WAIT_MS;
  if (q.wait !== undefined) {
    const ms = parseDuration(q.wait);
    if (ms === undefined || ms > MAX_WAIT_MS) bad("wait", "Must be a duration up to 10m, e.g. 30s");
    else waitMs = ms;
  }
  const filter: ListFilter = {
    limit: q.limit,
    ...(after !== undefined ? { after } : {}),
    ...(selector ? { selector } : {}),
    ...(q.namespace !== undefined ? { namespace: q.namespace } : {}),
    ...(q.service !== undefined ? { service: q.service } : {}),
    ...(q.node !== undefined ? { node: q.node } : {}),
    ...(q.health !== undefined ? { health: q.health as Health } : {}),
    ...(q.status !== undefined ? { status: q.status as NodeStatus } : {}),
  };
  return { filter, ...(q.index !== undefined ? { index: q.index } : {}), waitMs };
}

/** Encodes a page's last key as the opaque cursor clients pass back. */
export function encodeCursor(key: string | null): string | null {
  if (key === null) return null;
  return btoa(String.fromCharCode(...new TextEncoder().encode(key))).replaceAll("+", "-")
    .replaceAll("/", "_").replaceAll("=", "");
}

/** The strong ETag of an object at a revision. */
export function etag(revision: number): string {
  return `"${revision}"`;
}

const ETAG = /^(?:W\/)?"(\d+)"$/;

/** Reads `If-Match` / `If-None-Match: *` into write preconditions. */
export function readPreconditions(c: Context): WritePreconditions {
  const ifMatch = c.req.header("if-match");
  const ifNoneMatch = c.req.header("if-none-match");
  const pre: WritePreconditions = {};
  if (ifMatch !== undefined) {
    const m = ETAG.exec(ifMatch.trim());
    if (!m) {
      throw new InvalidError(`Invalid If-Match header "${ifMatch}": expected an ETag like "42"`, [{
        in: "header",
        pointer: "/If-Match",
        message: 'Expected an ETag from a previous response, like "42"',
      }]);
    }
    pre.ifMatch = Number(m[1]);
  }
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch.trim() !== "*") {
      throw new InvalidError(
        `Invalid If-None-Match header "${ifNoneMatch}": only "*" is supported`,
        [{
          in: "header",
          pointer: "/If-None-Match",
          message: 'Only "*" (create only) is supported',
        }],
      );
    }
    pre.ifNoneMatch = true;
  }
  return pre;
}

/** Validates a path parameter; a bad one is a 422 that names it. */
export function pathName(c: Context, param: string, kind: "label" | "node"): string {
  const value = c.req.param(param) ?? "";
  const ok = kind === "label" ? isLabelName(value) : isNodeName(value);
  if (!ok) {
    const rule = kind === "label" ? "a DNS-1123 label" : NODE_NAME_RULE;
    throw new InvalidError(`Invalid ${param} "${value}": must be ${rule}`, [{
      in: "path",
      pointer: `/${param}`,
      message: `Must be ${rule}`,
    }]);
  }
  return value;
}

/** Validates an instance id path parameter (`<local-id>@<node>`). */
export function pathInstanceId(c: Context): string {
  const id = c.req.param("id") ?? "";
  const at = id.lastIndexOf("@");
  if (at <= 0 || !isLabelName(id.slice(0, at)) || !isNodeName(id.slice(at + 1))) {
    throw new InvalidError(`Invalid instance id "${id}": expected <local-id>@<node>`, [{
      in: "path",
      pointer: "/id",
      message: "Expected <local-id>@<node>, e.g. web@vm-1",
    }]);
  }
  return id;
}
