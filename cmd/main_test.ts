import assert from "node:assert/strict";
import { program, VERBS } from "./main.ts";

Deno.test("VERBS: each name loads the verb of that name", async () => {
  for (const [name, load] of Object.entries(VERBS)) {
    const commands = await load();
    assert.deepEqual(commands.map((c) => c.name()), [name]);
  }
});

Deno.test("program() loads only the verb the arguments name, or every verb", async () => {
  assert.deepEqual((await program(["get", "nodes"])).commands.map((c) => c.name()), ["get"]);
  const all = (await program(["--help"])).commands.map((c) => c.name());
  assert.deepEqual(all, Object.keys(VERBS));
  assert.deepEqual((await program(["gte"])).commands.length, all.length);
});
