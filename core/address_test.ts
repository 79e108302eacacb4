import assert from "node:assert/strict";
import { formatHostPort, isLoopback, parseHostPort } from "./address.ts";

Deno.test("parseHostPort() reads IPv4, names and bracketed IPv6", () => {
  assert.deepEqual(parseHostPort("127.0.0.1:0"), { host: "127.0.0.1", port: 0 });
  assert.deepEqual(parseHostPort("localhost:15080"), { host: "localhost", port: 15080 });
  assert.deepEqual(parseHostPort("[::1]:8080"), { host: "::1", port: 8080 });
  assert.equal(formatHostPort({ host: "::1", port: 8080 }), "[::1]:8080");
});

Deno.test("parseHostPort() refuses what is not HOST:PORT", () => {
  for (const bad of ["127.0.0.1", ":80", "::1:80", "host:99999", "host:port", ""]) {
    assert.equal(typeof parseHostPort(bad), "string", bad);
  }
});

Deno.test("isLoopback() knows the loopback addresses", () => {
  assert.ok(isLoopback("127.0.0.1") && isLoopback("127.1.2.3") && isLoopback("::1"));
  assert.ok(!isLoopback("0.0.0.0") && !isLoopback("10.0.0.1"));
});
