/**
 * Reading a join token on the host, without verifying it. The agent cannot
 * verify the signature (it does not know the server's key yet; learning it
 * is what enrolment is for), so it only decodes the claims it needs to find
 * the server and to pin its root CA. The server verifies the token when the
 * agent presents it. Decoding here still checks the shape and the expiry,
 * so a pasted API token, a truncated token or a stale one fails at once with
 * a message that says what to do, instead of as a refusal from the server.
 */
import { z } from "zod";
import type { Clock } from "./clock.ts";
import { InvalidError } from "./errors.ts";
import { zodProblems } from "./validate.ts";

/** The `iss` claim of every Ironmesh token. */
export const JOIN_TOKEN_ISSUER = "ironmesh";
/** The `aud` claim that makes a token a join token. */
export const JOIN_TOKEN_AUDIENCE = "ironmesh-enrol";

const PIN = /^sha256:[0-9a-f]{64}$/;

const claimsSchema = z.object({
  jti: z.string().min(1, "Must not be empty"),
  iat: z.number().finite(),
  exp: z.number().finite(),
  iss: z.literal(JOIN_TOKEN_ISSUER, { error: `Must be "${JOIN_TOKEN_ISSUER}"` }),
  aud: z.union([z.string(), z.array(z.string())]),
  td: z.string().min(1, "Must not be empty"),
  ns: z.string().min(1, "Must not be empty"),
  sa: z.string().min(1, "Must not be empty"),
  node: z.string().min(1, "Must not be empty").optional(),
  srv: z.array(
    z.url({ protocol: /^https$/, error: "Must be an https:// URL" }),
  ).optional(),
  // Lower-cased before the check: a fingerprint is the same in either case.
  pin: z.string().transform((s) => s.toLowerCase()).pipe(
    z.string().regex(PIN, 'Must be "sha256:" followed by 64 hex digits'),
  ),
});

/** The claims of a join token that the agent uses. */
export interface JoinTokenClaims {
  /** Token id; the server refuses a second use of it. */
  jti: string;
  /** Issued at, seconds since the Unix epoch. */
  iat: number;
  /** Expiry, seconds since the Unix epoch. */
  exp: number;
  /** Trust domain of the identity the host may take. */
  td: string;
  /** Namespace of that identity. */
  ns: string;
  /** Service account of that identity. */
  sa: string;
  /** The only node name the token may enrol; absent means any. */
  node?: string;
  /** Base URLs of the server, in the order to try them; may be empty. */
  srv: string[];
  /** `sha256:` and the lower-case hex SHA-256 of the DER of a root CA the server must present. */
  pin: string;
}

/** The SPIFFE ID a join token lets a host take: `spiffe://td/ns/NS/sa/SA`. */
export function joinTokenIdentity(claims: Pick<JoinTokenClaims, "td" | "ns" | "sa">): string {
  return `spiffe://${claims.td}/ns/${claims.ns}/sa/${claims.sa}`;
}

/**
 * The command that creates a join token like the one described, for error
 * messages: the fix for a spent or expired token is always a new one.
 */
export function joinTokenCommand(
  claims: { ns?: string | undefined; sa?: string | undefined; node?: string | undefined },
): string {
  const parts = [
    "ironmesh token create --kind join",
    `--namespace ${claims.ns ?? "NS"}`,
    `--service-account ${claims.sa ?? "SA"}`,
  ];
  if (claims.node !== undefined) parts.push(`--node ${claims.node}`);
  return parts.join(" ");
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

function decodeSegment(segment: string, what: string): unknown {
  // atob accepts standard base64 only; a JWT uses the URL alphabet without padding.
  if (!BASE64URL.test(segment) || segment.length % 4 === 1) {
    throw new InvalidError(`Invalid join token: its ${what} is not base64url`);
  }
  let text: string;
  try {
    const binary = atob(segment.replaceAll("-", "+").replaceAll("_", "/"));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new InvalidError(`Invalid join token: its ${what} is not base64url`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new InvalidError(`Invalid join token: its ${what} is not JSON`);
  }
}

/**
 * Decodes a join token (a JWT) without verifying its signature, checks that
 * its claims have the expected shape and that it has not expired at
 * `clock.now()`. Throws an {@link InvalidError} saying what is wrong.
 */
export function decodeJoinToken(text: string, clock: Clock): JoinTokenClaims {
  const token = text.trim();
  const parts = token.split(".");
  if (parts.length !== 3 || parts.some((p) => p === "")) {
    throw new InvalidError(
      `Invalid join token: a join token is a JWT of three dot-separated parts, this has ${
        parts.filter((p) => p !== "").length
      }; pass the token printed by "ironmesh token create --kind join"`,
    );
  }
  const header = decodeSegment(parts[0]!, "header");
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new InvalidError("Invalid join token: its header is not a JSON object");
  }
  const payload = decodeSegment(parts[1]!, "payload");
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
    throw new InvalidError("Invalid join token: its payload is not a JSON object");
  }
  const audience = (payload as Record<string, unknown>).aud;
  const audiences = Array.isArray(audience) ? audience : [audience];
  if (audience !== undefined && !audiences.includes(JOIN_TOKEN_AUDIENCE)) {
    throw new InvalidError(
      `Invalid join token: its audience is ${
        JSON.stringify(audience)
      }, not "${JOIN_TOKEN_AUDIENCE}"; an API token cannot enrol a host, create a join token with ${
        joinTokenCommand({})
      }`,
    );
  }
  const claims = parseJoinTokenClaims(payload);
  if (claims.exp * 1000 <= clock.now()) {
    throw new InvalidError(
      `Join token expired at ${
        new Date(claims.exp * 1000).toISOString()
      }: join tokens are short-lived; create a new one with ${joinTokenCommand(claims)}`,
    );
  }
  return claims;
}

/**
 * Checks that a join token's payload has the claims of {@link JoinTokenClaims}
 * and returns them; the server uses it on tokens whose signature it verified,
 * the agent on tokens it only decoded. Throws an {@link InvalidError} naming
 * each claim that is wrong.
 */
export function parseJoinTokenClaims(payload: unknown): JoinTokenClaims {
  const result = claimsSchema.safeParse(payload);
  if (!result.success) {
    const problems = zodProblems(result.error);
    const list = problems.map((p) => `${p.pointer.slice(1) || "payload"}: ${p.message}`);
    throw new InvalidError(`Invalid join token: ${list.join("; ")}`, problems);
  }
  const claims = result.data;
  return {
    jti: claims.jti,
    iat: claims.iat,
    exp: claims.exp,
    td: claims.td,
    ns: claims.ns,
    sa: claims.sa,
    ...(claims.node === undefined ? {} : { node: claims.node }),
    srv: claims.srv ?? [],
    pin: claims.pin,
  };
}
