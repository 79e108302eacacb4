import assert from "node:assert/strict";
import { z } from "zod";
import { ConfigFileError, parseConfigText, parseWith } from "./validate.ts";
import { InvalidError } from "./errors.ts";

const schema = z.strictObject({
  node: z.strictObject({ name: z.string() }),
  services: z.array(z.strictObject({ port: z.number().max(65535) })),
});

Deno.test("parseWith() reports every bad field with a JSON pointer", () => {
  let err: unknown;
  try {
    parseWith(schema, { node: { name: 1, extra: true }, services: [{ port: 70000 }] }, "body");
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof InvalidError);
  assert.deepEqual(err.problems.map((p) => p.pointer).sort(), [
    "/node/extra",
    "/node/name",
    "/services/0/port",
  ]);
});

Deno.test("parseConfigText() names the file, line and field", () => {
  const text = "node:\n  name: vm-1\nservices:\n  - port: 80\n  - port: 99999\n    colour: red\n";
  try {
    parseConfigText(text, "agent.yaml", schema);
    assert.fail("expected an error");
  } catch (e) {
    assert.ok(e instanceof ConfigFileError);
    const byPointer = Object.fromEntries(e.fileProblems.map((p) => [p.pointer, p]));
    assert.equal(byPointer["/services/1/port"]?.line, 5);
    assert.equal(byPointer["/services/1/colour"]?.line, 6);
    assert.match(e.message, /agent\.yaml:6:\d+: \/services\/1\/colour: Unknown field "colour"/);
  }
});

Deno.test("parseConfigText() reports YAML syntax errors with their line", () => {
  assert.throws(
    () => parseConfigText("node:\n  name: [unclosed\n", "a.yaml", schema),
    (e: unknown) => e instanceof ConfigFileError && e.fileProblems[0]!.line >= 2,
  );
});

Deno.test("parseConfigText() refuses duplicate keys", () => {
  assert.throws(
    () => parseConfigText("node:\n  name: a\n  name: b\nservices: []\n", "a.yaml", schema),
    ConfigFileError,
  );
});
