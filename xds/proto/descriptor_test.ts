import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const GENERATOR = fileURLToPath(new URL("../../scripts/gen_xds_protos.ts", import.meta.url));
const DESCRIPTOR = new URL("./envoy_descriptor.json", import.meta.url);

Deno.test("envoy_descriptor.json matches what scripts/gen_xds_protos.ts generates", async () => {
  const out = await Deno.makeTempFile({ suffix: ".json" });
  try {
    // A subprocess rather than an import: xds/ may not import scripts/ (see check_layers.ts).
    const run = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", GENERATOR, "--out", out],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(run.success, new TextDecoder().decode(run.stderr));
    const fresh = await Deno.readTextFile(out);
    const committed = await Deno.readTextFile(DESCRIPTOR);
    assert.ok(
      fresh === committed,
      "xds/proto/envoy_descriptor.json is stale: run `deno task gen:protos`",
    );
  } finally {
    await Deno.remove(out);
  }
});
