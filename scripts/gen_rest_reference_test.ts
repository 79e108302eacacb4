import assert from "node:assert/strict";
import { openApiDocument } from "../api/resources.ts";
import {
  REFERENCE_FILE,
  referenceMarkdown,
  renderReference,
  UPDATE_COMMAND,
} from "./gen_rest_reference.ts";

Deno.test("docs/rest-reference.md matches the OpenAPI document", async () => {
  const committed = await Deno.readTextFile(REFERENCE_FILE).catch(() => "");
  assert.ok(
    committed === await referenceMarkdown(),
    `docs/rest-reference.md is stale: run \`${UPDATE_COMMAND}\``,
  );
});

Deno.test("renderReference() has a section for every operation and schema", () => {
  const doc = openApiDocument();
  const text = renderReference(doc);
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const method of Object.keys(ops)) {
      assert.ok(text.includes(`### ${method.toUpperCase()} ${path}\n`), `${method} ${path}`);
    }
  }
  for (const name of Object.keys(doc.components.schemas)) {
    assert.ok(text.includes(`### ${name}\n`), name);
  }
});
