import assert from "node:assert/strict";
import { ConflictError, NotFoundError } from "../core/errors.ts";
import {
  activateGeneration,
  activeGeneration,
  nextGenerationId,
  retireGeneration,
  type StagedGeneration,
} from "./rotation.ts";

const gen = (id: number, stage: StagedGeneration["stage"], imported = false) => ({
  id,
  stage,
  imported,
});

Deno.test("nextGenerationId() is one more than the highest generation", () => {
  assert.equal(nextGenerationId([gen(1, "retired"), gen(2, "active")]), 3);
  assert.equal(nextGenerationId([gen(1, "active")]), 2);
});

Deno.test("nextGenerationId() refuses while a prepared generation waits", () => {
  assert.throws(
    () => nextGenerationId([gen(1, "active"), gen(2, "published")]),
    (e) => e instanceof ConflictError && /generation "2" is already prepared/.test(e.message),
  );
  // An older published generation (the previous signer) is no obstacle.
  assert.equal(nextGenerationId([gen(1, "published"), gen(2, "active")]), 3);
});

Deno.test("nextGenerationId() refuses for an imported CA", () => {
  assert.throws(
    () => nextGenerationId([gen(1, "active", true)]),
    (e) => e instanceof ConflictError && /was imported/.test(e.message),
  );
});

Deno.test("activateGeneration() moves the old signer to published", () => {
  const after = activateGeneration([gen(1, "active"), gen(2, "published")], 2);
  assert.deepEqual(after.map((g) => g.stage), ["published", "active"]);
  // Rolling back is allowed while the old root is still published.
  const back = activateGeneration(after, 1);
  assert.deepEqual(back.map((g) => g.stage), ["active", "published"]);
});

Deno.test("activateGeneration() refuses active, retired and unknown generations", () => {
  const gens = [gen(1, "retired"), gen(2, "active")];
  assert.throws(() => activateGeneration(gens, 2), /already active/);
  assert.throws(() => activateGeneration(gens, 1), /is retired/);
  assert.throws(() => activateGeneration(gens, 9), NotFoundError);
});

Deno.test("retireGeneration() retires a published generation only", () => {
  const gens = [gen(1, "published"), gen(2, "active")];
  assert.deepEqual(retireGeneration(gens, 1).map((g) => g.stage), ["retired", "active"]);
  assert.throws(() => retireGeneration(gens, 2), /is active; activate another/);
  assert.throws(
    () => retireGeneration([gen(1, "retired"), gen(2, "active")], 1),
    /already retired/,
  );
  assert.throws(() => retireGeneration(gens, 3), NotFoundError);
});

Deno.test("activeGeneration() insists on exactly one active generation", () => {
  assert.throws(() => activeGeneration([gen(1, "published")]), /0 generations are active/);
  assert.throws(
    () => activeGeneration([gen(1, "active"), gen(2, "active")]),
    /2 generations are active/,
  );
});
