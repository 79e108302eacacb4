import assert from "node:assert/strict";
import { FakeClock } from "./clock.ts";
import { InvalidError } from "./errors.ts";
import { decodeJoinToken, joinTokenCommand, joinTokenIdentity } from "./join_token.ts";

const PIN = "sha256:" + "ab".repeat(32);
const clock = new FakeClock(Date.UTC(2026, 0, 1));
const NOW_S = clock.now() / 1000;

function b64url(value: unknown): string {
  const bytes = new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replaceAll("=", "");
}

function token(claims: Record<string, unknown>, header: unknown = { alg: "EdDSA" }): string {
  return `${b64url(header)}.${b64url(claims)}.c2lnbmF0dXJl`;
}

const CLAIMS = {
  jti: "tok-1",
  iat: NOW_S - 60,
  exp: NOW_S + 3600,
  iss: "ironmesh",
  aud: "ironmesh-enrol",
  td: "ironmesh.local",
  ns: "default",
  sa: "web",
  node: "vm-1",
  srv: ["https://10.0.0.1:8443"],
  pin: PIN,
  extra: "ignored",
};

function refused(text: string, pattern: RegExp): void {
  assert.throws(() => decodeJoinToken(text, clock), (error: Error) => {
    assert.ok(error instanceof InvalidError, String(error));
    assert.match(error.message, pattern);
    return true;
  });
}

Deno.test("decodeJoinToken() returns the claims the agent uses", () => {
  assert.deepEqual(decodeJoinToken(`  ${token(CLAIMS)}\n`, clock), {
    jti: "tok-1",
    iat: NOW_S - 60,
    exp: NOW_S + 3600,
    td: "ironmesh.local",
    ns: "default",
    sa: "web",
    node: "vm-1",
    srv: ["https://10.0.0.1:8443"],
    pin: PIN,
  });
});

Deno.test("decodeJoinToken() accepts a token without node and srv, an audience list and an upper-case pin", () => {
  const { node: _node, srv: _srv, ...rest } = CLAIMS;
  const claims = decodeJoinToken(
    token({ ...rest, aud: ["x", "ironmesh-enrol"], pin: PIN.toUpperCase().replace("SHA", "sha") }),
    clock,
  );
  assert.equal(claims.node, undefined);
  assert.deepEqual(claims.srv, []);
  assert.equal(claims.pin, PIN);
});

Deno.test("decodeJoinToken() refuses a text that is not three parts", () => {
  refused("imt_0123456789", /three dot-separated parts, this has 1; pass the token printed by/);
  refused("a.b", /this has 2/);
  refused("a..c", /this has 2/);
});

Deno.test("decodeJoinToken() refuses bad base64url and bad JSON", () => {
  refused(`${b64url({})}.%%%.sig`, /^Invalid join token: its payload is not base64url$/);
  refused(
    `${b64url({})}.${b64url("{not json")}.sig`,
    /^Invalid join token: its payload is not JSON$/,
  );
  refused(`${b64url("[1]")}.${b64url(CLAIMS)}.sig`, /its header is not a JSON object/);
  refused(`${b64url({})}.${b64url("7")}.sig`, /its payload is not a JSON object/);
});

Deno.test("decodeJoinToken() names every missing or malformed claim", () => {
  const { jti: _jti, td: _td, ...rest } = CLAIMS;
  refused(token(rest), /^Invalid join token: jti: .*; td: /);
  refused(token({ ...CLAIMS, pin: "md5:abc" }), /pin: Must be "sha256:" followed by 64 hex digits/);
  refused(token({ ...CLAIMS, srv: ["http://10.0.0.1:8080"] }), /srv\/0: Must be an https:\/\/ URL/);
  refused(token({ ...CLAIMS, iss: "someone" }), /iss: Must be "ironmesh"/);
});

Deno.test("decodeJoinToken() refuses an API token with a hint", () => {
  refused(
    token({ ...CLAIMS, aud: "ironmesh-api" }),
    /audience is "ironmesh-api", not "ironmesh-enrol"; an API token cannot enrol a host/,
  );
});

Deno.test("decodeJoinToken() refuses an expired token and says how to make a new one", () => {
  refused(
    token({ ...CLAIMS, exp: NOW_S }),
    new RegExp(
      "^Join token expired at 2026-01-01T00:00:00.000Z: join tokens are short-lived; create a new one with " +
        "ironmesh token create --kind join --namespace default --service-account web --node vm-1$",
    ),
  );
});

Deno.test("joinTokenIdentity() and joinTokenCommand() spell the identity and the command", () => {
  assert.equal(
    joinTokenIdentity({ td: "example.org", ns: "shop", sa: "api" }),
    "spiffe://example.org/ns/shop/sa/api",
  );
  assert.equal(
    joinTokenCommand({ ns: "shop", sa: "api" }),
    "ironmesh token create --kind join --namespace shop --service-account api",
  );
  assert.equal(
    joinTokenCommand({}),
    "ironmesh token create --kind join --namespace NS --service-account SA",
  );
});
