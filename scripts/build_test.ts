import assert from "node:assert/strict";
import {
  artifactName,
  explainCompileFailure,
  inspectBundle,
  main,
  parseTarget,
  projectAbove,
  releaseArtifacts,
  TARGETS,
  UsageError,
  writeSums,
} from "./build.ts";

Deno.test("parseTarget: triples and os-arch shortcuts in either order", () => {
  const cases: [string, string][] = [
    ["x86_64-unknown-linux-gnu", "x86_64-unknown-linux-gnu"],
    ["linux-x86_64", "x86_64-unknown-linux-gnu"],
    ["x86_64-linux", "x86_64-unknown-linux-gnu"],
    ["linux-amd64", "x86_64-unknown-linux-gnu"],
    ["Linux-ARM64", "aarch64-unknown-linux-gnu"],
    ["linux/aarch64", "aarch64-unknown-linux-gnu"],
    ["darwin-x86_64", "x86_64-apple-darwin"],
    ["macos-arm64", "aarch64-apple-darwin"],
    ["aarch64-apple-darwin", "aarch64-apple-darwin"],
  ];
  for (const [text, triple] of cases) assert.equal(parseTarget(text).triple, triple, text);
  assert.throws(() => parseTarget("windows-x86_64"), UsageError);
  assert.throws(() => parseTarget("linux"), /Unknown target "linux": use one of linux-x86_64/);
  assert.deepEqual(TARGETS.map(artifactName), [
    "ironmesh-linux-x86_64",
    "ironmesh-linux-aarch64",
    "ironmesh-darwin-x86_64",
    "ironmesh-darwin-aarch64",
  ]);
});

Deno.test("inspectBundle: names the module of each finding, skips the bundler's preamble", () => {
  const text = [
    `import { createRequire as __deno_internal_createRequire } from "node:module";`,
    `var __require = __deno_internal_createRequire(import.meta.url);`,
    `// ca/sign_pool.ts`,
    `const w = new Worker(new URL("./sign_worker.ts", import.meta.url), { type: "module" });`,
    `// node_modules/.deno/@grpc+grpc-js@1.14.7/node_modules/@grpc/grpc-js/build/src/orca.js`,
    "includeDirs: [`${__dirname}/../../proto/xds`]",
    `// core/files.ts`,
    `const t = Deno.readTextFileSync("/src/tree/core/data.json");`,
    `const m = await import(name); x.import(y);`,
    `import { z } from "npm:zod@4";`,
  ].join("\n");
  const found = inspectBundle(text, "/src/tree/").map((f) => [f.level, f.source, f.line]);
  assert.deepEqual(found, [
    ["warning", "ca/sign_pool.ts", 4],
    ["warning", "ca/sign_pool.ts", 4],
    ["warning", "npm:@grpc/grpc-js/build/src/orca.js", 6],
    ["error", "core/files.ts", 8],
    ["warning", "core/files.ts", 9],
    ["error", "core/files.ts", 10],
  ]);
  // A longer directory that merely starts with the root's name is not the root.
  assert.deepEqual(inspectBundle(`"/src/treehouse/x"`, "/src/tree/"), []);
});

Deno.test("writeSums: sha256sum format, sorted; releaseArtifacts lists only release files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/ironmesh.js`, "abc");
    await Deno.writeTextFile(`${dir}/ironmesh-linux-x86_64`, "");
    await Deno.writeTextFile(`${dir}/notes.txt`, "not an artifact");
    const names = await releaseArtifacts(dir);
    assert.deepEqual(names, ["ironmesh-linux-x86_64", "ironmesh.js"]);
    await writeSums(dir, names);
    assert.equal(
      await Deno.readTextFile(`${dir}/SHA256SUMS`),
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  ironmesh-linux-x86_64\n" +
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  ironmesh.js\n",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("explainCompileFailure: says which target, why, and that DENORT_BIN supplies a runtime", () => {
  const target = parseTarget("linux-aarch64");
  const download = `Compile cmd/main.ts to dist/ironmesh-linux-aarch64
Download https://dl.deno.land/release/v2.9.6/denort-aarch64-unknown-linux-gnu.zip
error: Writing deno compile executable to temporary file 'x.tmp-1'

Caused by:
    0: Setting up base binary.
    1: error sending request for url (https://dl.deno.land/...): client error (Connect)
    4: failed to lookup address information: Name or service not known

Stack backtrace:
   0: <unknown>`;
  const text = explainCompileFailure(target, download);
  assert.match(text, /^Cannot compile for aarch64-unknown-linux-gnu \(ironmesh-linux-aarch64\)/);
  assert.match(text, /could not download its runtime/);
  assert.match(text, /failed to lookup address information/);
  assert.match(text, /DENORT_BIN=\/path\/to\/denort deno task compile --target linux-aarch64/);
  const missing = explainCompileFailure(
    target,
    "error: x\n\nCaused by:\n    0: Could not find denort at '/nope'\n",
    "/nope",
  );
  assert.match(missing, /DENORT_BIN points to \/nope, which does not exist/);
});

Deno.test("main: usage errors exit 2 without building", async () => {
  const errors: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => errors.push(args.join(" "));
  try {
    assert.equal(await main([]), 2);
    assert.equal(await main(["ship"]), 2);
    assert.equal(await main(["compile", "--target", "windows-x86_64"]), 2);
    assert.equal(await main(["bundle", "--sourcemap", "sideways"]), 2);
    assert.equal(await main(["bundle", "--target", "linux-x86_64"]), 2);
  } finally {
    console.error = original;
  }
  assert.match(errors.join("\n"), /Unknown target "windows-x86_64"/);
});

Deno.test("main: DENORT_BIN with several targets is refused before compiling", async () => {
  const dir = await Deno.makeTempDir();
  const errors: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => errors.push(args.join(" "));
  Deno.env.set("DENORT_BIN", "/nonexistent/denort");
  try {
    assert.equal(await main(["compile", "--out-dir", dir]), 2);
  } finally {
    Deno.env.delete("DENORT_BIN");
    console.error = original;
    await Deno.remove(dir, { recursive: true });
  }
  assert.match(errors.join("\n"), /supplies the runtime of ONE target/);
});

Deno.test("projectAbove: finds a deno.json up the tree", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/a/b`, { recursive: true });
    await Deno.writeTextFile(`${dir}/deno.json`, "{}");
    assert.equal(await projectAbove(`${dir}/a/b`), `${dir}/deno.json`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
