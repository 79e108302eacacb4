import assert from "node:assert/strict";
import { canonicalJson, contentVersion } from "./canonical.ts";
import type { JsonObject, JsonValue } from "./model.ts";

Deno.test("canonicalJson() sorts keys at every level and keeps array order", () => {
  assert.equal(
    canonicalJson({ b: [3, { z: 1, a: null }], a: "x" }),
    '{"a":"x","b":[3,{"a":null,"z":1}]}',
  );
});

Deno.test("canonicalJson() gives a shared frozen part the same text every time, kept or not", () => {
  const filter: JsonObject = Object.freeze({ name: "hcm" });
  const chain: JsonObject = Object.freeze({ filters: Object.freeze([filter]) as JsonValue[] });
  const bodies: JsonObject[] = [1, 2, 3].map((i) => ({ name: `l${i}`, filter_chains: [chain] }));
  const texts = bodies.map((b) => canonicalJson(b));
  assert.deepEqual(
    texts,
    [1, 2, 3].map((i) => `{"filter_chains":[{"filters":[{"name":"hcm"}]}],"name":"l${i}"}`),
  );
  assert.equal(contentVersion(bodies[0]!), contentVersion(structuredClone(bodies[0]!)));
});

Deno.test("canonicalJson() never keeps the text of a value frozen only on the surface", () => {
  const inner: JsonObject = { port: 1 };
  const outer = Object.freeze({ inner });
  for (let i = 0; i < 3; i++) canonicalJson(outer);
  inner.port = 2;
  assert.equal(canonicalJson(outer), '{"inner":{"port":2}}');
});
