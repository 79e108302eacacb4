import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

/** The generated files of this folder, and the generator each comes from. */
const GENERATED = [
  { generator: "gen_xds_protos.ts", file: "envoy_descriptor.json" },
  { generator: "gen_xds_rules.ts", file: "envoy_rules.json" },
];

for (const { generator, file } of GENERATED) {
  Deno.test(`${file} matches what scripts/${generator} generates`, async () => {
    const out = await Deno.makeTempFile({ suffix: ".json" });
    try {
      // A subprocess rather than an import: xds/ may not import scripts/ (see check_layers.ts).
      const run = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          fileURLToPath(new URL(`../../scripts/${generator}`, import.meta.url)),
          "--out",
          out,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.ok(run.success, new TextDecoder().decode(run.stderr));
      const fresh = await Deno.readTextFile(out);
      const committed = await Deno.readTextFile(new URL(`./${file}`, import.meta.url));
      assert.ok(fresh === committed, `xds/proto/${file} is stale: run \`deno task gen:protos\``);
    } finally {
      await Deno.remove(out);
    }
  });
}
