import assert from "node:assert/strict";
import { checkFile, importProblem, importsOf, specifierProblem } from "./check_layers.ts";

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

Deno.test("importProblem() lets test files reach their own layer and the store contract", () => {
  assert.equal(importProblem("registry/registry_test.ts", "ca/root.ts"), undefined);
  assert.equal(importProblem("store/sqlite_test.ts", "store/contract.ts"), undefined);
  assert.equal(importProblem("core/model_test.ts", "store/contract.ts"), undefined);
  assert.equal(
    importProblem("registry/registry_test.ts", "api/app.ts"),
    "layer registry may not import layer api",
  );
  assert.equal(
    importProblem("core/model_test.ts", "store/store.ts"),
    "layer core may not import layer store",
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

Deno.test("importsOf() finds static, type, re-export, side-effect and dynamic imports", () => {
  const source = [
    `import { a,`,
    `  b } from "./a.ts";`,
    `import type { T } from '../core/model.ts';`,
    `export * as ns from "./ns.ts";`,
    `export { x } from "./x.ts";`,
    `import "./side.ts";`,
    `const m = await import("./lazy.ts");`,
    "type S = typeof import(`./typed.ts`);",
    `import data from "./data.json" with { type: "json" };`,
  ].join("\n");
  assert.deepEqual(importsOf(source), [
    { specifier: "./a.ts", line: 2 },
    { specifier: "../core/model.ts", line: 3 },
    { specifier: "./ns.ts", line: 4 },
    { specifier: "./x.ts", line: 5 },
    { specifier: "./side.ts", line: 6 },
    { specifier: "./lazy.ts", line: 7 },
    { specifier: "./typed.ts", line: 8 },
    { specifier: "./data.json", line: 9 },
  ]);
});

Deno.test("importsOf() ignores imports in comments, strings, templates and regexes", () => {
  const source = [
    `// import { a } from "./comment.ts";`,
    `/** Example: import("./jsdoc.ts") */`,
    `const s = 'import { b } from "./string.ts"';`,
    'const t = `${x} import("./template.ts") ${`import "./nested.ts"`}`;',
    `const r = /import "\\.\\/regex.ts"/;`,
    `const q = a / b; // import "./after-division.ts"`,
    `x.import("./method.ts");`,
    `import { real } from "./real.ts";`,
  ].join("\n");
  assert.deepEqual(importsOf(source), [{ specifier: "./real.ts", line: 8 }]);
});

Deno.test("checkFile() reports each bad import with its line", () => {
  const source = [
    `import { z } from "zod";`,
    `import { VERSION } from "../core/version.ts";`,
    `import { app } from "../api/app.ts";`,
    `import { join } from "jsr:@std/path";`,
  ].join("\n");
  assert.deepEqual(checkFile("registry/feed.ts", source), [
    {
      file: "registry/feed.ts",
      specifier: "../api/app.ts",
      line: 3,
      reason: "layer registry may not import layer api",
    },
    {
      file: "registry/feed.ts",
      specifier: "jsr:@std/path",
      line: 4,
      reason:
        "jsr:, http: and https: specifiers are not allowed: add the package to the import map in deno.json",
    },
  ]);
});
