import assert from "node:assert/strict";
import { jsonDiff } from "./json_diff.ts";

Deno.test("jsonDiff: equal values have no difference", () => {
  assert.deepEqual(jsonDiff({ a: [1, { b: "x" }] }, { a: [1, { b: "x" }] }), []);
});

Deno.test("jsonDiff: changed, added and removed leaves with pointers", () => {
  assert.deepEqual(
    jsonDiff(
      { spec: { rules: [{ weight: 90 }, { weight: 10 }], old: true, "a/b": 1 } },
      { spec: { rules: [{ weight: 80 }, { weight: 10 }, { weight: 10 }], "a/b": 2 } },
    ),
    [
      { pointer: "/spec/a~1b", before: 1, after: 2 },
      { pointer: "/spec/old", before: true },
      { pointer: "/spec/rules/0/weight", before: 90, after: 80 },
      { pointer: "/spec/rules/2", after: { weight: 10 } },
    ],
  );
});

Deno.test("jsonDiff: a type change is one change at that pointer", () => {
  assert.deepEqual(jsonDiff({ a: [1] }, { a: { 0: 1 } }), [
    { pointer: "/a", before: [1], after: { 0: 1 } },
  ]);
  assert.deepEqual(jsonDiff(null, 1), [{ pointer: "", before: null, after: 1 }]);
});
