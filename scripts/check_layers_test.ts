import assert from "node:assert/strict";
import { checkLayers, importProblem, specifierProblem } from "./check_layers.ts";

Deno.test("importProblem() lets imports point inward", () => {
  assert.equal(importProblem("store/sqlite.ts", "core/model.ts"), undefined);
  assert.equal(importProblem("registry/registry.ts", "store/store.ts"), undefined);
  assert.equal(importProblem("auth/tokens.ts", "store/store.ts"), undefined);
  assert.equal(importProblem("api/app.ts", "registry/registry.ts"), undefined);
  assert.equal(importProblem("agent/host.ts", "client/api_client.ts"), undefined);
  assert.equal(importProblem("cmd/main.ts", "api/app.ts"), undefined);
  assert.equal(importProblem("tests/e2e_test.ts", "cmd/main.ts"), undefined);
  assert.equal(importProblem("scripts/bench/main.ts", "xds/server.ts"), undefined);
  assert.equal(importProblem("xds/server.ts", "xds/generate/cluster.ts"), undefined);
});

Deno.test("importProblem() refuses outward and sideways imports", () => {
  assert.equal(
    importProblem("core/model.ts", "store/store.ts"),
    "layer core may not import layer store",
  );
  assert.equal(
    importProblem("store/sqlite.ts", "registry/feed.ts"),
    "layer store may not import layer registry",
  );
  assert.equal(
    importProblem("registry/feed.ts", "ca/root.ts"),
    "layer registry may not import layer ca",
  );
  assert.equal(
    importProblem("client/api_client.ts", "auth/tokens.ts"),
    "layer client may not import layer auth",
  );
  assert.equal(importProblem("api/app.ts", "xds/server.ts"), "layer api may not import layer xds");
  assert.equal(
    importProblem("agent/host.ts", "cmd/output.ts"),
    "layer agent may not import layer cmd",
  );
  assert.equal(
    importProblem("core/x.ts", "tests/helpers.ts"),
    "layer core may not import layer tests",
  );
});

Deno.test("importProblem() lets test code reach its own layer, never production code", () => {
  assert.equal(importProblem("registry/registry_test.ts", "ca/root.ts"), undefined);
  assert.equal(importProblem("ca/join_tokens_test.ts", "store/_testing.ts"), undefined);
  assert.equal(importProblem("agent/_testing.ts", "api/_testing.ts"), undefined);
  assert.equal(
    importProblem("core/model_test.ts", "store/_testing.ts"),
    "layer core may not import layer store",
  );
  assert.equal(
    importProblem("registry/registry_test.ts", "api/app.ts"),
    "layer registry may not import layer api",
  );
  assert.equal(
    importProblem("store/sqlite.ts", "store/_testing.ts"),
    "production code may not import test code",
  );
  assert.equal(
    importProblem("agent/agent.ts", "agent/_xds_relay_testing.ts"),
    "production code may not import test code",
  );
});

Deno.test("importProblem() refuses folders without a layer and paths outside the repository", () => {
  assert.match(
    importProblem("docs/gen.ts", "core/model.ts") ?? "",
    /^folder "docs" is in no layer/,
  );
  assert.match(importProblem("api/app.ts", "vendor/x.ts") ?? "", /^folder "vendor" is in no layer/);
  assert.equal(importProblem("cmd/main.ts", "../other/x.ts"), "it is outside the repository");
});

Deno.test("specifierProblem() refuses remote and absolute specifiers only", () => {
  assert.match(specifierProblem("jsr:@std/path") ?? "", /^jsr:, http: and https:/);
  assert.match(specifierProblem("https://deno.land/std/mod.ts") ?? "", /not allowed/);
  assert.match(specifierProblem("/abs/x.ts") ?? "", /^absolute specifiers/);
  assert.equal(specifierProblem("zod"), undefined);
  assert.equal(specifierProblem("node:net"), undefined);
  assert.equal(specifierProblem("./x.ts"), undefined);
});

/** Writes `files` (path → source) and a `deno.json` into a new temporary directory. */
async function tree(files: Record<string, string>): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "layers_test_" });
  await Deno.writeTextFile(`${root}/deno.json`, JSON.stringify({ imports: { zod: "npm:zod" } }));
  for (const [path, source] of Object.entries(files)) {
    await Deno.mkdir(`${root}/${path.split("/").slice(0, -1).join("/")}`, { recursive: true });
    await Deno.writeTextFile(`${root}/${path}`, source);
  }
  return root;
}

Deno.test("checkLayers() fails on a wrong-direction import, with its file and line", async () => {
  const root = await tree({
    "core/model.ts": `export const a = 1;\n`,
    "store/store.ts":
      `// a comment: import "../api/app.ts"\nimport { a } from "../core/model.ts";\nexport const b = a;\n`,
    "api/app.ts": `import { b } from "../store/store.ts";\nexport const c = b;\n`,
    "core/bad.ts": [
      `import { a } from "./model.ts";`,
      `import type { c } from "../api/app.ts";`,
      `export const d: typeof c = a;`,
      `export const lazy = () => import("../store/store.ts");`,
    ].join("\n"),
  });
  try {
    const report = await checkLayers(root);
    assert.equal(report.files, 4);
    assert.deepEqual(report.violations, [
      {
        file: "core/bad.ts",
        specifier: "../api/app.ts",
        line: 2,
        reason: "layer core may not import layer api",
      },
      {
        file: "core/bad.ts",
        specifier: "../store/store.ts",
        line: 4,
        reason: "layer core may not import layer store",
      },
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("checkLayers() passes a tree whose imports point inward, and sees every one", async () => {
  const root = await tree({
    "core/model.ts": `export const a = 1;\n`,
    "store/store.ts": `import { a } from "../core/model.ts";\nexport { a };\n`,
    "store/_testing.ts": `import { a } from "./store.ts";\nexport const sample = a;\n`,
    "store/store_test.ts": `import { sample } from "./_testing.ts";\nconsole.log(sample);\n`,
  });
  try {
    assert.deepEqual(await checkLayers(root), { files: 4, imports: 3, violations: [] });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("checkLayers() refuses a folder in no layer and a remote import", async () => {
  const root = await tree({
    "core/model.ts": `import { z } from "https://example.com/zod.ts";\nexport const a = z;\n`,
    "vendor/x.ts": `export const x = 1;\n`,
  });
  try {
    const { violations } = await checkLayers(root);
    assert.deepEqual(violations.map((v) => [v.file, v.line, v.reason.split(":")[0]]), [
      ["vendor/x.ts", 1, 'folder "vendor" is in no layer'],
      ["core/model.ts", 1, "jsr"],
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
