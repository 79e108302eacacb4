import assert from "node:assert/strict";
import { closestNames, didYouMean } from "./suggest.ts";

const KINDS = ["services", "instances", "nodes", "namespaces", "svc", "ns"];

Deno.test("closestNames() finds the nearest names, ignoring case", () => {
  assert.deepEqual(closestNames("servcies", KINDS), ["services"]);
  assert.deepEqual(closestNames("Nodse", KINDS), ["nodes"]);
  assert.deepEqual(closestNames("instance", KINDS), ["instances"]);
});

Deno.test("closestNames() proposes nothing for text far from every name", () => {
  assert.deepEqual(closestNames("policy", KINDS), []);
  assert.deepEqual(closestNames("x", KINDS), []);
});

Deno.test("didYouMean() words the hint, or is empty", () => {
  assert.equal(didYouMean("nods", KINDS), ' (did you mean "nodes"?)');
  assert.equal(didYouMean("zzzzzzzz", KINDS), "");
});
